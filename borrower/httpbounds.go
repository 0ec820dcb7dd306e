package borrower

import (
	"net/http"
	"time"

	"ferry/internal/httpstall"
)

// Bounds of the borrower's HTTP servers. A client that trickles its
// request, idles, or stops reading an answer must not hold a connection
// (and a goroutine, a file) for ever.
const (
	headerTimeout   = 10 * time.Second
	idleTimeout     = 2 * time.Minute
	maxHeaderBytes  = 16 << 10
	maxAdminBody    = 16 << 10 // the largest admin request is a lease request of a few hundred bytes
	adminReadTimout = 30 * time.Second
	// defaultImageStall is how long one write of an image B answer may
	// take. Image B (a distribution's initrd: 50-500 MB) crosses the WAN
	// inside the tunnel, at whatever speed the lender's uplink has: an
	// absolute write timeout would cut a slow but healthy download (500 MB
	// at 2 Mbit/s is over half an hour). So each write gets its own
	// deadline instead: a download that keeps moving is never cut, one
	// whose client stopped reading is cut after this long. 60 s rides out
	// TCP's retransmission back-off on a lossy link (it doubles from 1 s
	// towards 2 min; several lost segments in a row reach tens of seconds).
	defaultImageStall = 60 * time.Second
)

// adminServer serves the local CLI. Its writes are bounded by the longest
// request it answers: a return waits for the servers to shut down.
func (m *Manager) adminServer() *http.Server {
	write := m.cfg.shutdownWait() + m.cfg.shutdownGrace() + 3*time.Minute
	h := m.AdminHandler()
	return &http.Server{ReadHeaderTimeout: headerTimeout, ReadTimeout: adminReadTimout, WriteTimeout: write,
		IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, maxAdminBody)
			h.ServeHTTP(w, r)
		})}
}

// imageServer serves image B: GETs only, no request body
// (so no ReadTimeout, which would also cancel a long download), and a
// stall deadline per write.
func (m *Manager) imageServer() *http.Server {
	h, stall := m.ImageHandler(), m.cfg.imageStall()
	return &http.Server{ReadHeaderTimeout: headerTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
		Handler: httpstall.Handler(h, stall)}
}

// statusServer serves the local status listener: GETs of /metrics, small
// and quick.
func (m *Manager) statusServer() *http.Server {
	return &http.Server{ReadHeaderTimeout: headerTimeout, ReadTimeout: adminReadTimout, WriteTimeout: time.Minute,
		IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes, Handler: m.StatusHandler()}
}

// Package httpstall bounds HTTP servers that send large answers to slow
// clients: image A over iPXE, image B through the tunnel. An absolute
// write timeout would cut a slow but healthy download, so instead every
// write gets its own deadline: an answer that keeps moving is never cut,
// one whose client stopped reading is cut after the stall bound.
package httpstall

import (
	"net/http"
	"time"
)

// Handler serves h for GETs without a request body, each write of the
// answer bounded by stall from the write before it (the first one from
// the request's start, which also bounds the handler before its first
// byte). A request with a body is refused with 400: nothing behind h
// reads one, and one left unread would hold the connection after the
// answer.
func Handler(h http.Handler, stall time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
			http.Error(w, "no request body here", http.StatusBadRequest)
			return
		}
		h.ServeHTTP(newWriter(w, stall), r)
	})
}

// writer moves the connection's write deadline to stall from now before
// every write.
type writer struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func newWriter(w http.ResponseWriter, stall time.Duration) *writer {
	p := &writer{ResponseWriter: w, rc: http.NewResponseController(w), stall: stall}
	p.rc.SetWriteDeadline(time.Now().Add(stall))
	return p
}

func (p *writer) Write(b []byte) (int, error) {
	p.rc.SetWriteDeadline(time.Now().Add(p.stall))
	return p.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (p *writer) Unwrap() http.ResponseWriter { return p.ResponseWriter }

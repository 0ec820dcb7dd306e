package lender

import (
	"log/slog"
	"net/http"
	"time"

	"ferry/api"
)

// httpTimeouts bound one connection of the lender's listeners. Every
// request and answer there is small JSON (at most api.MaxLeaseRequest in,
// a lease or a CRL out) and every handler is one store transaction or
// two, so the bounds are tight enough to shed a slow client and loose
// enough for a borrower across a WAN.
type httpTimeouts struct {
	readHeader time.Duration // request line and headers
	read       time.Duration // the whole request, body included
	write      time.Duration // from the end of the request to the end of the answer
	idle       time.Duration // a kept-alive connection between requests
}

var defaultTimeouts = httpTimeouts{readHeader: 10 * time.Second, read: 30 * time.Second, write: time.Minute, idle: 2 * time.Minute}

// Bounds of every request to the lender's listeners, before any handler
// looks: the largest body is a lease request; no header set needs more
// than a few KiB (client certificates travel in TLS, not in headers).
const (
	maxRequestBody = api.MaxLeaseRequest
	maxHeaderBytes = 16 << 10
)

// newHTTPServer is one of the lender's listeners: h behind the timeouts
// and a body bound, its errors logged at Warn.
func newHTTPServer(h http.Handler, log *slog.Logger, t httpTimeouts, maxBody int64) *http.Server {
	return &http.Server{
		Handler:           http.MaxBytesHandler(h, maxBody),
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

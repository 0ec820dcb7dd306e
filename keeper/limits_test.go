package keeper

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// A client that stalls in the middle of a request body must lose its
// connection: otherwise anyone who reaches the keeper holds connections
// and goroutines for as long as they like. The limits are shortened; the
// deadline below only bounds the test.
func TestHTTPServerDropsClientStalledInABody(t *testing.T) {
	k := New(Options{StateDir: t.TempDir(), Mountinfo: "/proc/self/mountinfo"}, slog.New(slog.DiscardHandler))
	k.limits = httpLimits{header: 200 * time.Millisecond, read: 300 * time.Millisecond, write: 300 * time.Millisecond, idle: 300 * time.Millisecond}
	srv := k.newHTTPServer(k.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /status HTTP/1.1\r\nHost: keeper\r\nContent-Length: 1000\r\n\r\n0123456789")
	// Whether an answer comes first or not (the server may try to read
	// the rest of the body before answering), the connection must end.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection of a client stalled in its body still open 10 s later")
	}
}

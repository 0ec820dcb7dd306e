package lender

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveOn runs srv on a loopback listener until the test ends.
func serveOn(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// A client that sends its headers and then trickles (or stops) its body
// does not hold a connection of the lender's listeners: the server ends
// it. The client waits far longer than the configured bound, and fails
// only if the server never does.
func TestSlowRequestBodyIsCutOff(t *testing.T) {
	f := newFixture(t, 0)
	short := httpTimeouts{readHeader: 200 * time.Millisecond, read: 300 * time.Millisecond, write: 300 * time.Millisecond, idle: 300 * time.Millisecond}
	addr := serveOn(t, newHTTPServer(f.m.AgentHandler(), slog.New(slog.DiscardHandler), short, 1<<10))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /v1/enroll HTTP/1.1\r\nHost: lender\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n{\"tok")
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err = io.ReadAll(conn) // an answer then EOF, or a reset
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the lender kept a connection whose request body stalled")
	}
}

// An idle keep-alive connection is closed by the lender.
func TestIdleConnectionIsClosed(t *testing.T) {
	f := newFixture(t, 0)
	short := httpTimeouts{readHeader: 200 * time.Millisecond, read: 300 * time.Millisecond, write: 300 * time.Millisecond, idle: 300 * time.Millisecond}
	addr := serveOn(t, newHTTPServer(f.m.AgentHandler(), slog.New(slog.DiscardHandler), short, 1<<10))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /v1/health HTTP/1.1\r\nHost: lender\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err = br.ReadByte() // EOF or a reset once the lender closes it
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("idle connection: %v, want it closed by the lender", err)
	}
}

// A request body over the listener's bound is refused before any handler
// reads it whole.
func TestRequestBodyIsBounded(t *testing.T) {
	f := newFixture(t, 0)
	addr := serveOn(t, newHTTPServer(f.m.AgentHandler(), slog.New(slog.DiscardHandler), defaultTimeouts, 1<<10))
	resp, err := http.Post("http://"+addr+"/v1/enroll", "application/json", strings.NewReader(`{"token":"`+strings.Repeat("A", 4<<10)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Fatalf("a 4 KiB body over a 1 KiB bound: %s, want a refusal", resp.Status)
	}
}

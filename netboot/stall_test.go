package netboot

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

const bigInitrd = 32 << 20 // more than loopback's socket buffers hold

// bigLab serves an initrd of bigInitrd bytes over a real listener with
// stall as the stall bound, and returns the initrd's URL and a count of
// the initrd answers the server has finished (each closes its reader when
// its handler returns, complete or cut).
func bigLab(t *testing.T, stall time.Duration) (string, *atomic.Int32) {
	t.Helper()
	var done atomic.Int32
	p := testPolicy(t)
	p.Spec.Initrd = Artifact{Open: func(context.Context) (io.ReadCloser, error) {
		return closeCounter{io.LimitReader(zeros{}, bigInitrd), &done}, nil
	}}
	cfg := testConfig(ModeDHCP, nil)
	cfg.HTTPStall = stall
	s, err := New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.httpServer()
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	base := "http://" + ln.Addr().String()
	resp, err := http.Get(base + strings.TrimPrefix(s.scriptURL(macKnown, netip.Addr{}), s.cfg.HTTPBase))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`initrd --name initrd.img \S+(/f/[A-Za-z0-9_-]+)`).FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("script without an initrd URL:\n%s", body)
	}
	return base + m[1], &done
}

// closeCounter counts its Close calls in n.
type closeCounter struct {
	io.Reader
	n *atomic.Int32
}

func (c closeCounter) Close() error { c.n.Add(1); return nil }

// A download that keeps moving is never cut, however long it takes; one
// whose client stops reading is, after the stall bound. Neither bound is
// timed here: the slow download reads a chunk every stall/50 and takes
// more than twice the stall bound in all; the stalled client reads
// nothing until the server has given up on its answer. (With a pause of
// a third of the bound, a loaded 2-core machine stretched one pause past
// the bound and cut the slow download in half of the runs.)
func TestSlowDownloadCompletesAndStalledOneIsCut(t *testing.T) {
	const stall = 2 * time.Second
	url, done := bigLab(t, stall)

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	const chunk = bigInitrd / 128
	start := time.Now()
	for {
		n, err := io.CopyN(io.Discard, resp.Body, chunk)
		got += n
		if err != nil {
			break
		}
		time.Sleep(stall / 50) // slow, but never stalled for the bound
	}
	resp.Body.Close()
	if got != bigInitrd {
		t.Fatalf("slow but moving download got %d of %d bytes in %v: cut off", got, bigInitrd, time.Since(start))
	}
	// The slow answer's handler may return after its client has read
	// the last byte; the stalled one's is the second.
	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	const bound = 10*stall + 30*time.Second // generous: the wait ends when the server gives up
	for stopped := time.Now(); done.Load() < 2; time.Sleep(20 * time.Millisecond) {
		if time.Since(stopped) > bound {
			t.Fatalf("a download whose client read nothing for %v was not cut (stall bound %v)", bound, stall)
		}
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if n == bigInitrd && err == nil {
		t.Fatalf("a stalled download the server gave up on still delivered all %d bytes", n)
	}
}

// A request with a body is refused: nothing here reads one.
func TestRequestWithBodyRefused(t *testing.T) {
	s := newTestServer(t, ModeDHCP, testPolicy(t), nil)
	path := strings.TrimPrefix(s.scriptURL(macKnown, netip.Addr{}), s.cfg.HTTPBase)
	rec := httptest.NewRecorder()
	req, _ := http.NewRequest(http.MethodGet, path, strings.NewReader("x=1"))
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("GET with a body: %d, want 400", rec.Code)
	}
}

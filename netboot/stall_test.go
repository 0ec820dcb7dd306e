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
	"testing"
	"time"
)

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

const bigInitrd = 32 << 20 // more than loopback's socket buffers hold

// bigLab serves an initrd of bigInitrd bytes over a real listener with
// stall as the stall bound, and returns the initrd's URL.
func bigLab(t *testing.T, stall time.Duration) string {
	t.Helper()
	p := testPolicy(t)
	p.Spec.Initrd = Artifact{Open: func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(io.LimitReader(zeros{}, bigInitrd)), nil
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
	return base + m[1]
}

// A download that keeps moving is never cut, however long it takes; one
// whose client stops reading is, after the stall bound. Neither bound is
// timed here: the slow download takes many times the stall bound, and
// the stalled client waits many times it.
func TestSlowDownloadCompletesAndStalledOneIsCut(t *testing.T) {
	const stall = 300 * time.Millisecond
	url := bigLab(t, stall)

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	buf := make([]byte, 1<<20)
	for {
		n, err := io.ReadFull(resp.Body, buf)
		got += int64(n)
		if err != nil {
			break
		}
		time.Sleep(stall / 3) // slow, but never stalled for the bound
	}
	resp.Body.Close()
	if got != bigInitrd {
		t.Fatalf("slow but moving download got %d of %d bytes: cut off", got, bigInitrd)
	}

	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(10 * stall) // the client stops reading
	n, err := io.Copy(io.Discard, resp.Body)
	if n == bigInitrd && err == nil {
		t.Fatalf("a download whose client stalled for %v was not cut (stall bound %v)", 10*stall, stall)
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

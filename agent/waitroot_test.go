package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"ferry/api"
)

// wait-root: a 503 with the root's state is asked again after
// Retry-After, its state told; a 200 ends it; any other status fails it,
// naming the status.
func TestWaitReadyWaitsThrough503AndFailsOnRefusal(t *testing.T) {
	var n atomic.Int32
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			t.Errorf("method %s, want HEAD", r.Method)
		}
		if n.Add(1) <= 2 {
			w.Header().Set("Retry-After", "1")
			w.Header().Set(api.HeaderRootState, "copying 37%")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL + "/b1/vmlinuz")
	var said []string
	waited, err := newFetcher(nil, nil).waitReady(context.Background(), u, func(s string) { said = append(said, s) })
	if err != nil || !waited {
		t.Fatalf("waitReady = %v, %v; want waited, nil", waited, err)
	}
	if n.Load() != 3 || len(said) != 1 || said[0] != "copying 37%" {
		t.Fatalf("asked %d times, told %q; want 3 asks and the state once", n.Load(), said)
	}
	status.Store(http.StatusForbidden)
	_, err = newFetcher(nil, nil).waitReady(context.Background(), u, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("waitReady on 403 = %v, want an error naming it", err)
	}
}

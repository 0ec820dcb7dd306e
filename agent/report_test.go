package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"ferry/api"
)

// TestReporterDoesNotWaitForTheLender: a phase's report goes out while the
// next phase runs; drain delivers everything queued, in order, before the
// hand-over.
func TestReporterDoesNotWaitForTheLender(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		<-release // the lender is slow to answer
		var p api.PhaseReport
		if req.URL.Path != api.PathPhase || json.NewDecoder(req.Body).Decode(&p) != nil {
			http.Error(w, "bad report", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, p.Phase+"/"+p.LeaseID)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	r := &reporter{log: slog.New(slog.DiscardHandler)}
	now := time.Now()
	r.add(ctx, "boot-a", now, now, 0, nil) // before the certificate: pending
	r.lease = &Lease{LeaseID: "L1", ServerID: "s1"}
	r.client = &api.Client{Base: srv.URL, HTTP: srv.Client()}
	r.start(ctx)
	added := make(chan struct{})
	go func() {
		for _, n := range []string{"enroll", "tunnel-a", "kexec"} {
			r.add(ctx, n, now, now, 0, nil)
		}
		close(added)
	}()
	select {
	case <-added:
	case <-time.After(10 * time.Second):
		t.Fatal("add waited for the lender's answer")
	}
	close(release)
	r.drain()
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"boot-a/L1", "enroll/L1", "tunnel-a/L1", "kexec/L1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("the lender got %v after drain, want %v", got, want)
	}
}

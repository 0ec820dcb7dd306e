package borrower

import (
	"context"
	"net/http"
	"testing"
	"time"

	"ferry/api"
)

// A lender from before held polls answers a booting lease's watch at
// once, without Preference-Applied: the borrower asks it no more (no
// request loop) and Sync's poll every poll_seconds brings the enrolled
// server's key to the gateway as before.
func TestBootingLeaseIsPolledWhenTheLenderHoldsNoPolls(t *testing.T) {
	g := newGateRig(t)
	g.lender.booting = true
	g.m.cfg.PollSeconds = 1
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	a, err := g.m.RequestLease(ctx, Request{Count: 1, Image: "b1"})
	if err != nil || a.State != StateActive {
		t.Fatalf("RequestLease = %s, %v; want active", a.State, err)
	}
	go func() { g.m.Sync(ctx); close(done) }()
	seen := func() (waits, gets int) {
		g.lender.mu.Lock()
		defer g.lender.mu.Unlock()
		return g.lender.waits, g.lender.answers[http.StatusOK] + g.lender.answers[http.StatusNotModified]
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if w, _ := seen(); w > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the booting lease was not watched within 15 s")
		}
	}
	g.lender.change(a.Lender.ID, func(l *api.Lease) { l.Servers[0].Phase, l.Servers[0].SPKIPin = "enrolled", pinOf(l.ID, 0) })
	start := time.Now()
	for deadline := start.Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if l, _ := g.m.Lease(ctx, a.ID); len(l.Pins) == 1 {
			break
		}
		if time.Now().After(deadline) {
			w, n := seen()
			t.Fatalf("the enrolled key not taken 15 s later (poll_seconds 1; %d GETs, %d asked to wait)", n, w)
		}
	}
	time.Sleep(2 * time.Second) // would a watch go on asking?
	waits, gets := seen()
	if waits != 1 {
		t.Errorf("the borrower asked a lender that holds no polls to hold %d, want once", waits)
	}
	if limit := 2 + 2*int(time.Since(start)/time.Second+2); gets > limit {
		t.Errorf("%d GETs of the lease in %s at poll_seconds 1, want at most %d (a loop?)", gets, time.Since(start).Round(time.Second), limit)
	}
}

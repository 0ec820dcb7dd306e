package borrower

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A request held at the root's gate was allowed when it arrived; the
// lease may end while it waits (a return, a conflict). The root becoming
// ready then must not let it through to image B: it is refused as a
// request arriving now would be.
func TestHeldRequestIsRefusedWhenItsLeaseEndedMeanwhile(t *testing.T) {
	ctx := context.Background()
	g := newGateRig(t)
	l := g.lease(t, 1)
	root := l.Roots[0]
	if _, err := g.m.updateRoot(ctx, root, func(r *RootState) { r.State = RootCopying }); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() { code, _ := g.get(l, 0); got <- code }()
	for deadline := time.Now().Add(10 * time.Second); g.m.copies.holding(root) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request was not held at the root's gate")
		}
	}
	cur, err := g.m.Lease(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	cur.State = StateReturning
	if err := g.m.put(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if _, err := g.m.updateRoot(ctx, root, func(r *RootState) { r.State = RootReady }); err != nil {
		t.Fatal(err)
	}
	if code := <-got; code != http.StatusForbidden {
		t.Fatalf("held request of a lease returned meanwhile, root now ready: %d, want 403", code)
	}
}

// Each server is gated by its own root, chosen by who it is (its tunnel
// address and key), never by what it asks: a server whose root is ready
// gets image B while another server's root of the same lease is still
// copied, and only that other server is told its root's state.
func TestEachServerWaitsOnItsOwnRootAlone(t *testing.T) {
	ctx := context.Background()
	g := newGateRig(t)
	g.m.cfg.ImageStallSeconds = 1 // a hold of half a second
	l := g.lease(t, 2)
	if _, err := g.m.updateRoot(ctx, l.Roots[0], func(r *RootState) { r.State = RootCopying }); err != nil {
		t.Fatal(err)
	}
	if code, body := g.get(l, 1); code != http.StatusOK {
		t.Fatalf("server 1, its root ready, server 0's copying: %d %q, want image B", code, body)
	}
	code, body := g.get(l, 0)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, l.Roots[0]) || strings.Contains(body, l.Roots[1]) {
		t.Fatalf("server 0, its root copying: %d %q, want 503 naming its root %s alone", code, body, l.Roots[0])
	}
}

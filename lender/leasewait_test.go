package lender

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"ferry/api"
)

// heldLab is a lease of one server at a lender serving the m2m API, the
// borrower's client, the lease's path and the tag of the lease as the
// borrower stored it.
type heldLab struct {
	f    *fixture
	c    *api.Client
	l    api.Lease
	path string
	tag  string
	ctx  context.Context
}

func newHeldLab(t *testing.T) *heldLab {
	t.Helper()
	f := newFixture(t, 1)
	acme := newOrg(t, t.TempDir(), "acme")
	c := newM2MLab(t, f, acme).client(acme)
	// Cancelled before the test server closes (cleanups run last first),
	// which would otherwise wait for the polls it holds.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var l api.Lease
	if err := c.Call(ctx, "POST", api.PathLeases, leaseReq("held-key-00001", 1), &l); err != nil {
		t.Fatal(err)
	}
	tag, err := api.ETag(l)
	if err != nil {
		t.Fatal(err)
	}
	return &heldLab{f: f, c: c, l: l, path: api.PathLeases + "/" + l.ID, tag: tag, ctx: ctx}
}

func (h *heldLab) enroll(t *testing.T) {
	t.Helper()
	b, _ := h.f.m.BootFor(h.l.Servers[0].MAC)
	_, csr := csrFor(t, b.LeaseID+"/"+b.ServerID)
	if _, err := h.f.m.Enroll(h.ctx, testFrom, api.EnrollRequest{Token: b.Token, MAC: b.MAC, CSR: csr}); err != nil {
		t.Fatal(err)
	}
}

type heldAnswer struct {
	changed, held bool
	lease         api.Lease
	err           error
	took          time.Duration
}

func (h *heldLab) poll(wait time.Duration) <-chan heldAnswer {
	out := make(chan heldAnswer, 1)
	go func() {
		var a heldAnswer
		start := time.Now()
		a.changed, a.held, a.err = h.c.GetIfChangedWait(h.ctx, h.path, h.tag, wait, &a.lease)
		a.took = time.Since(start)
		out <- a
	}()
	return out
}

// waitHeld waits until the lender holds n polls.
func waitHeld(t *testing.T, m *Manager, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		m.waits.mu.Lock()
		got := m.waits.total
		m.waits.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lender holds %d polls, want %d", got, n)
		}
	}
}

// A borrower's held poll of an unchanged lease is answered with the
// lease as soon as a server enrolls (its pin in it), not at the end of
// the wait.
func TestHeldPollAnswersWhenTheLeaseChanges(t *testing.T) {
	h := newHeldLab(t)
	got := h.poll(20 * time.Second)
	waitHeld(t, h.f.m, 1)
	h.enroll(t)
	select {
	case a := <-got:
		if a.err != nil || !a.changed || !a.held || a.lease.Servers[0].SPKIPin == "" {
			t.Fatalf("held poll = changed %v held %v pin %q, %v; want the lease with the new pin, held", a.changed, a.held, a.lease.Servers[0].SPKIPin, a.err)
		}
		if a.took > 5*time.Second {
			t.Fatalf("held poll answered %s after it was sent; want at the enrollment", a.took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held poll not answered 10 s after the enrollment")
	}
	waitHeld(t, h.f.m, 0)
}

// A held poll of a lease that does not change ends with 304 at the end
// of the wait it asked for, saying it was held; a tag that is not the
// lease's is answered at once, whatever the wait.
func TestHeldPollEndsNotModifiedAtTheEndOfTheWait(t *testing.T) {
	h := newHeldLab(t)
	a := <-h.poll(time.Second)
	if a.err != nil || a.changed || !a.held {
		t.Fatalf("held poll of an unchanged lease = changed %v held %v, %v; want 304, held", a.changed, a.held, a.err)
	}
	if a.took < 900*time.Millisecond {
		t.Fatalf("held poll answered after %s; want after the 1 s asked for", a.took)
	}
	h.tag = `"not-the-lease"`
	a = <-h.poll(20 * time.Second)
	if a.err != nil || !a.changed || a.lease.ID != h.l.ID || a.took > 5*time.Second {
		t.Fatalf("held poll with a stale tag = changed %v, %q, %v after %s; want the lease at once", a.changed, a.lease.ID, a.err, a.took)
	}
}

// A borrower holds at most maxHeldPerBorrower polls: the next is refused
// with 429 and Retry-After, not held; a plain poll still answers.
func TestHeldPollsAreBoundedPerBorrower(t *testing.T) {
	h := newHeldLab(t)
	var polls []<-chan heldAnswer
	for range maxHeldPerBorrower {
		polls = append(polls, h.poll(20*time.Second))
	}
	waitHeld(t, h.f.m, maxHeldPerBorrower)
	a := <-h.poll(20 * time.Second)
	var refused *api.WaitRefused
	if !errors.As(a.err, &refused) || refused.RetryAfter != heldRetryAfter {
		t.Fatalf("poll over the bound = changed %v held %v, %v; want a refusal with Retry-After %s", a.changed, a.held, a.err, heldRetryAfter)
	}
	if changed, err := h.c.GetIfChanged(h.ctx, h.path, h.tag, &api.Lease{}); err != nil || changed {
		t.Fatalf("plain poll at the bound = changed %v, %v; want 304", changed, err)
	}
	body := scrape(t, h.f.m.StatusHandler())
	for _, want := range []string{fmt.Sprintf("ferry_lender_held_polls %d", maxHeldPerBorrower), "ferry_lender_held_polls_refused_total 1"} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics at the bound lacks %q", want)
		}
	}
	h.enroll(t) // wakes them all
	for _, p := range polls {
		if a := <-p; a.err != nil || !a.changed {
			t.Fatalf("held poll = changed %v, %v; want the changed lease", a.changed, a.err)
		}
	}
	waitHeld(t, h.f.m, 0)
}

// The lender as a whole holds at most its total, whoever asks.
func TestHeldPollsAreBoundedInTotal(t *testing.T) {
	w := newLeaseWaits(2, 3)
	var releases []func()
	for _, who := range []string{"acme", "acme", "globex"} {
		r, err := w.hold(who)
		if err != nil {
			t.Fatalf("hold %d for %s: %v", len(releases)+1, who, err)
		}
		releases = append(releases, r)
	}
	if _, err := w.hold("initech"); err == nil {
		t.Fatal("a 4th held poll at a total of 3 was held")
	}
	releases[0]()
	releases[0]() // a second release must not free another's place
	if _, err := w.hold("initech"); err != nil {
		t.Fatalf("hold after a release: %v", err)
	}
	if _, err := w.hold("initech"); err == nil {
		t.Fatal("held beyond the total after a double release")
	}
}

// A stopping lender answers its held polls at once (304), so that they
// do not hold its grace, and every watch is forgotten.
func TestHeldPollsEndWhenTheLenderStops(t *testing.T) {
	h := newHeldLab(t)
	var polls []<-chan heldAnswer
	for range 3 {
		polls = append(polls, h.poll(20*time.Second))
	}
	waitHeld(t, h.f.m, 3)
	h.f.m.StopWaits()
	for _, p := range polls {
		select {
		case a := <-p:
			if a.err != nil || a.changed || a.took > 10*time.Second {
				t.Fatalf("held poll at stop = changed %v, %v after %s; want 304 at once", a.changed, a.err, a.took)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("held poll not answered 10 s after the lender stopped")
		}
	}
	h.f.m.waits.mu.Lock()
	defer h.f.m.waits.mu.Unlock()
	if len(h.f.m.waits.next) != 0 || len(h.f.m.waits.held) != 0 {
		t.Fatalf("after stop: %d leases watched, %d borrowers holding; want none", len(h.f.m.waits.next), len(h.f.m.waits.held))
	}
}

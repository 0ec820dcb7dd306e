package lender

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry/api"
	"ferry/store"
)

// Bounds on held polls (GET PathLeases/ID with Prefer: wait=N, see
// api.MaxLeaseWait): each costs the lender a goroutine, a connection and
// a timer for up to 20 s, so a borrower, or all of them, can hold only
// so many. A borrower watches its active leases, a few at a time.
const (
	maxHeldPerBorrower = 16
	maxHeldTotal       = 256
	// heldRetryAfter is what a refused hold tells the borrower to wait
	// before it asks to be held again (it polls meanwhile).
	heldRetryAfter = 10 * time.Second
)

// leaseWaits wakes held polls when their lease changes. A change is any
// committed write of the lease's record or of one of its members (see
// watchedStore), so no write path can forget to wake them; a wake makes
// the poll read the lease again and compare tags, so a spurious wake
// costs a read, never a wrong answer.
type leaseWaits struct {
	mu        sync.Mutex
	next      map[string]*leaseWake // by lease ID: those polls are waiting on
	held      map[string]int        // held polls by borrower
	total     int
	perOwner  int
	max       int
	stopped   chan struct{}
	closeOnce sync.Once
	refused   prometheus.Counter
}

// leaseWake is closed at its lease's next committed change.
type leaseWake struct {
	ch      chan struct{}
	waiters int
}

func newLeaseWaits(perOwner, max int) *leaseWaits {
	return &leaseWaits{next: map[string]*leaseWake{}, held: map[string]int{},
		perOwner: perOwner, max: max, stopped: make(chan struct{}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_lender_held_polls_refused_total",
			Help: "Borrowers' polls the lender refused to hold (429): a borrower or the lender at its bound."})}
}

// collectors are the held polls' series: how many are held now, and the
// refusals (a borrower that meets the bound polls instead: slower, not
// broken).
func (w *leaseWaits) collectors() []prometheus.Collector {
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ferry_lender_held_polls",
		Help: "Borrowers' polls of unchanged leases held until the lease changes, now."}, func() float64 {
		w.mu.Lock()
		defer w.mu.Unlock()
		return float64(w.total)
	})
	return []prometheus.Collector{held, w.refused}
}

// hold counts one more held poll of who, or refuses it when who or the
// lender is at its bound; release ends it.
func (w *leaseWaits) hold(who string) (release func(), err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.held[who] >= w.perOwner:
		w.refused.Inc()
		return nil, fmt.Errorf("%d held polls of borrower %q already, the most one borrower may have", w.held[who], who)
	case w.total >= w.max:
		w.refused.Inc()
		return nil, fmt.Errorf("%d held polls already, the most the lender holds", w.total)
	}
	w.held[who]++
	w.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.total--
			if w.held[who]--; w.held[who] == 0 {
				delete(w.held, who)
			}
		})
	}, nil
}

// watch returns a channel closed at lease id's next committed change, and
// the function that stops watching (forgetting the lease when nobody
// waits on it any more, so leases once polled leave nothing behind).
// Watch before reading the lease: a change between the read and the wait
// then still wakes the poll.
func (w *leaseWaits) watch(id string) (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lw := w.next[id]
	if lw == nil {
		lw = &leaseWake{ch: make(chan struct{})}
		w.next[id] = lw
	}
	lw.waiters++
	var once sync.Once
	return lw.ch, func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			if lw.waiters--; lw.waiters == 0 && w.next[id] == lw {
				delete(w.next, id)
			}
		})
	}
}

// changed wakes the polls of the leases ids name.
func (w *leaseWaits) changed(ids map[string]struct{}) {
	if len(ids) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range ids {
		if lw := w.next[id]; lw != nil {
			close(lw.ch)
			delete(w.next, id)
		}
	}
}

// stop ends every held poll (each answers at once) and any later one
// holds no more: a stopping lender must not keep its grace waiting.
func (w *leaseWaits) stop() { w.closeOnce.Do(func() { close(w.stopped) }) }

// heldLease answers a borrower's conditional GET of lease id that asks
// to wait: at once when the borrower's tag is not the lease's, else when
// the lease changes or, with 304, when wait ends, the lender stops or
// the borrower hangs up. Preference-Applied says it was held, so the
// borrower knows this lender holds polls.
func (m *Manager) heldLease(w http.ResponseWriter, r *http.Request, o owner, id string, wait time.Duration) {
	release, err := m.waits.hold(o.name)
	if err != nil {
		w.Header().Set("Retry-After", fmt.Sprint(int(heldRetryAfter/time.Second)))
		api.WriteJSON(w, http.StatusTooManyRequests, api.Error{Field: "wait", Reason: err.Error()})
		return
	}
	defer release()
	w.Header().Set(api.HeaderApplied, fmt.Sprintf("wait=%d", int(wait/time.Second)))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		woken, unwatch := m.waits.watch(id)
		l, err := m.leaseOf(r.Context(), o, id)
		if err != nil {
			unwatch()
			api.WriteError(w, err)
			return
		}
		data, tag, err := api.Tagged(l)
		if err != nil || !api.Matches(r, tag) {
			unwatch()
			if err != nil {
				api.WriteError(w, err)
				return
			}
			api.WriteTaggedData(w, r, data, tag)
			return
		}
		select {
		case <-woken:
			unwatch()
			continue
		case <-timer.C:
		case <-m.waits.stopped:
		case <-r.Context().Done():
		}
		unwatch()
		api.WriteTaggedData(w, r, data, tag) // the same tag: 304
		return
	}
}

// watchedStore is the lender's store, telling waits which leases each
// committed transaction changed: a write to a lease's record (key: its
// ID) or to one of its members (key: ID/index).
type watchedStore struct {
	store.Store
	waits *leaseWaits
}

func (s watchedStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	ids := map[string]struct{}{}
	err := s.Store.Update(ctx, func(tx store.Tx) error { return fn(touchTx{tx, ids}) })
	if err == nil {
		s.waits.changed(ids)
	}
	return err
}

// Batch may run fn more than once: ids gathers every run's, and a lease
// a discarded run touched is only woken for nothing.
func (s watchedStore) Batch(ctx context.Context, fn func(store.Tx) error) error {
	var mu sync.Mutex // Batch's runs are sequential, but take no chance
	ids := map[string]struct{}{}
	err := s.Store.Batch(ctx, func(tx store.Tx) error {
		mu.Lock()
		defer mu.Unlock()
		return fn(touchTx{tx, ids})
	})
	if err == nil {
		s.waits.changed(ids)
	}
	return err
}

// touchTx records the leases a transaction writes.
type touchTx struct {
	store.Tx
	ids map[string]struct{}
}

func (t touchTx) touch(table store.Table, key string) {
	switch table {
	case store.Leases:
		t.ids[key] = struct{}{}
	case store.Members:
		if id, _, ok := strings.Cut(key, "/"); ok {
			t.ids[id] = struct{}{}
		}
	}
}

func (t touchTx) Put(table store.Table, key string, v any) error {
	t.touch(table, key)
	return t.Tx.Put(table, key, v)
}

func (t touchTx) Delete(table store.Table, key string) error {
	t.touch(table, key)
	return t.Tx.Delete(table, key)
}

// StopWaits answers every held poll at once, and holds no more: for a
// lender that stops (Serve calls it before it lets requests finish).
func (m *Manager) StopWaits() { m.waits.stop() }

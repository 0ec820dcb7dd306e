package borrower

import (
	"context"
	"errors"
	"sync"
	"time"

	"ferry/api"
)

// Watching a lease: while a server of an active lease has not enrolled,
// the borrower asks the lender to hold its poll of that lease until it
// changes (api.GetIfChangedWait), so that a new key reaches the gateway
// within milliseconds of the enrollment rather than up to poll_seconds
// later, while image A's tunnel-a retries. Sync's poll goes on for every
// lease whose watch is not held (a lender without held polls, one at its
// bound, an error, a watch not yet answered): the ETag each request
// carries is the stored lease's, so an update missed while the lender
// restarted or a connection dropped is answered in full by the next
// request, whichever asks it.
const (
	// maxWatches bounds this borrower's held polls, under the lender's
	// 16 per borrower; further booting leases are polled.
	maxWatches = 8
	// watchGap spaces a watch's requests after a change, so that a big
	// lease's enrollments come in a few answers a second, not one each.
	watchGap = 200 * time.Millisecond
	// noWaitRecheck: how soon a lender that held no poll is asked again
	// (an upgraded lender then starts holding them).
	noWaitRecheck = 5 * time.Minute
	// errorPause: how soon a watch asks again after a failed request.
	errorPause = time.Second
)

// leaseWatches is the leases being watched: true once the lender held
// a poll of it, and until a request fails or comes back unheld.
type leaseWatches struct {
	mu   sync.Mutex
	held map[string]bool
}

// watchBooting starts a watch for each booting lease of heads not yet
// watched, up to maxWatches.
func (m *Manager) watchBooting(ctx context.Context, heads []leaseHead) {
	m.watches.mu.Lock()
	defer m.watches.mu.Unlock()
	for _, h := range heads {
		if len(m.watches.held) >= maxWatches {
			return
		}
		if _, ok := m.watches.held[h.ID]; ok || !h.Booting || h.LenderID == "" {
			continue
		}
		m.watches.held[h.ID] = false
		go m.watchLease(ctx, h.ID)
	}
}

// watchHeld reports whether the lender holds lease id's polls: Sync
// need not poll it.
func (m *Manager) watchHeld(id string) bool {
	m.watches.mu.Lock()
	defer m.watches.mu.Unlock()
	return m.watches.held[id]
}

func (m *Manager) setWatchHeld(id string, held bool) {
	m.watches.mu.Lock()
	defer m.watches.mu.Unlock()
	if _, ok := m.watches.held[id]; ok {
		m.watches.held[id] = held
	}
}

// watchLease holds polls of lease id at the lender, one after another,
// and applies each change, until the lease no longer boots or ctx ends.
func (m *Manager) watchLease(ctx context.Context, id string) {
	defer func() {
		m.watches.mu.Lock()
		delete(m.watches.held, id)
		m.watches.mu.Unlock()
	}()
	pause := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		x, err := m.fetch.index(ctx)
		if err != nil {
			m.setWatchHeld(id, false)
			if !pause(m.cfg.poll()) {
				return
			}
			continue
		}
		h, ok := x.heads[id]
		if !ok || !h.Booting || h.State != StateActive || h.expired(time.Now()) {
			return // Sync polls it from here
		}
		if h.LenderTag == "" {
			// Work only a full answer each poll does (see headOf): Sync's.
			m.setWatchHeld(id, false)
			if !pause(m.cfg.poll()) {
				return
			}
			continue
		}
		var got api.Lease
		changed, held, err := m.lender.GetIfChangedWait(ctx, api.PathLeases+"/"+h.LenderID, h.LenderTag, api.MaxLeaseWait, &got)
		var refused *api.WaitRefused
		switch {
		case ctx.Err() != nil:
			return
		case errors.As(err, &refused):
			m.setWatchHeld(id, false)
			m.log.Info("the lender holds no more of our polls; polling this lease", "lease", id, "err", err)
			if !pause(max(refused.RetryAfter, m.cfg.poll())) {
				return
			}
			continue
		case err != nil:
			// A lender restarting, a connection lost: ask again soon
			// (Sync's poll says what failed).
			m.setWatchHeld(id, false)
			if !pause(min(m.cfg.poll(), errorPause)) {
				return
			}
			continue
		case !held && !changed:
			m.setWatchHeld(id, false)
			m.log.Info("the lender answered at once: it holds no polls; polling this lease every poll_seconds", "lease", id, "recheck", noWaitRecheck)
			if !pause(noWaitRecheck) {
				return
			}
			continue
		}
		m.setWatchHeld(id, held)
		if !changed {
			m.events.pollsUnchanged.Add(1)
			continue
		}
		m.events.pollsChanged.Add(1)
		if err := m.refreshLatest(ctx, id, got); err != nil {
			m.setWatchHeld(id, false)
			m.log.Warn("watch", "lease", id, "err", err)
			if !pause(m.cfg.poll()) {
				return
			}
			continue
		}
		if !pause(watchGap) {
			return
		}
	}
}

// refreshLatest applies got, the lender's answer for lease id, to the
// lease as now stored: one at a time with Sync's, so two answers are
// never applied to the same stored copy.
func (m *Manager) refreshLatest(ctx context.Context, id string, got api.Lease) error {
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	l, err := m.Lease(ctx, id)
	if err != nil {
		return err
	}
	_, err = m.refreshWith(ctx, l, got)
	return err
}

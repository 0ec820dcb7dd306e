package borrower

import (
	"context"
	"fmt"
	"slices"
	"time"

	"ferry/api"
)

// Refresh reads an active lease from the lender, tells the gateway about
// newly enrolled keys and records both.
func (m *Manager) Refresh(ctx context.Context, l Lease) (Lease, error) {
	if l.State != StateActive {
		return l, nil
	}
	var got api.Lease
	if err := m.lender.Call(ctx, "GET", api.PathLeases+"/"+l.Lender.ID, nil, &got); err != nil {
		return l, fmt.Errorf("refresh lease %s (lender %s): %w", l.ID, l.Lender.ID, err)
	}
	l, err := m.dropConflicted(ctx, l, got)
	if err != nil {
		return l, err
	}
	var add []Key
	for _, s := range got.Servers {
		if s.SPKIPin != "" && !slices.Contains(l.Pins, s.SPKIPin) {
			add = append(add, Key{Lease: got.ID, Server: s.ID, Pin: s.SPKIPin, Expires: got.Expires})
		}
	}
	if len(add) > 0 && m.gw != nil {
		if err := m.gw.Allow(ctx, add...); err != nil {
			return l, fmt.Errorf("gateway allow list for lease %s: %w", l.ID, err)
		}
	}
	for _, e := range add {
		l.Pins = append(l.Pins, e.Pin)
		m.log.Info("key allowed at the gateway", "lease", l.ID, "pin", e.Pin)
	}
	l.Lender = got
	return l, m.put(ctx, l)
}

// ReturnLease ends a lease: keeper shutdown, gateway, lender, roots, each
// recorded, so a crash resumes the return.
func (m *Manager) ReturnLease(ctx context.Context, id string) (Lease, error) {
	l, err := m.Lease(ctx, id)
	if err != nil {
		return l, err
	}
	switch l.State {
	case StateReturned, StateFailed:
		return l, nil
	case StateRequesting:
		return l, &api.FieldError{Field: "lease", Reason: fmt.Sprintf("%s is still being requested; retry", id)}
	}
	if l.State != StateReturning {
		l.State = StateReturning
		if err := m.put(ctx, l); err != nil {
			return l, err
		}
	}
	return m.finishReturn(ctx, l)
}

func (m *Manager) finishReturn(ctx context.Context, l Lease) (Lease, error) {
	if l.Shutdown == nil {
		// Recorded once: a resumed return goes straight on to the gateway.
		l.Shutdown = m.shutdownServers(ctx, l)
		if err := m.put(ctx, l); err != nil {
			return l, err
		}
	}
	if m.gw != nil && l.Lender.ID != "" {
		if err := m.gw.Revoke(ctx, l.Lender.ID, serverIDs(l)); err != nil {
			return l, fmt.Errorf("return %s: gateway: %w", l.ID, err)
		}
	}
	var got api.Lease
	if err := m.lender.Call(ctx, "POST", api.PathLeases+"/"+l.Lender.ID+api.PathReturn, nil, &got); err != nil {
		return l, fmt.Errorf("return %s: lender: %w", l.ID, err)
	}
	l.Lender = got
	for _, name := range l.Roots {
		if err := m.roots.Retire(ctx, name); err != nil {
			return l, fmt.Errorf("return %s: root %s: %w", l.ID, name, err)
		}
	}
	l.State = StateReturned
	m.log.Info("lease returned", "lease", l.ID, "lender_lease", l.Lender.ID)
	return l, m.put(ctx, l)
}

func serverIDs(l Lease) []string {
	out := make([]string, 0, len(l.Lender.Servers))
	for _, s := range l.Lender.Servers {
		out = append(out, s.ID)
	}
	return out
}

// allowed is the keys of l the gateway was told about.
func allowed(l Lease) []Key {
	var out []Key
	for _, s := range l.Lender.Servers {
		if s.SPKIPin != "" && slices.Contains(l.Pins, s.SPKIPin) {
			out = append(out, Key{Lease: l.Lender.ID, Server: s.ID, Pin: s.SPKIPin, Expires: l.Lender.Expires})
		}
	}
	return out
}

// expired reports whether an active lease's end, as the lender set it,
// has passed.
func expired(l Lease, now time.Time) bool {
	return l.State == StateActive && !l.Lender.Expires.IsZero() && !now.Before(l.Lender.Expires)
}

// expire returns l because its end passed: the same path as `lease return`.
func (m *Manager) expire(ctx context.Context, l Lease) error {
	m.log.Info("lease expired, returning it", "lease", l.ID, "lender_lease", l.Lender.ID, "end", l.Lender.Expires)
	if _, err := m.ReturnLease(ctx, l.ID); err != nil {
		return fmt.Errorf("expired lease %s: %w", l.ID, err)
	}
	m.events.expired.Add(1)
	return nil
}

// tend is one pass of Sync over a lease: return it if its end passed,
// else refresh it from the lender.
func (m *Manager) tend(ctx context.Context, l Lease) error {
	if expired(l, time.Now()) {
		return m.expire(ctx, l)
	}
	_, err := m.Refresh(ctx, l)
	return err
}

// Resume drives what a killed borrower left in flight, then keeps active
// leases in sync with the lender until ctx ends.
func (m *Manager) Resume(ctx context.Context) error {
	ls, err := m.Leases(ctx)
	if err != nil {
		return err
	}
	for _, l := range ls {
		switch {
		case l.State == StateRequesting:
			_, err = m.drive(ctx, l)
		case l.State == StateReturning:
			_, err = m.finishReturn(ctx, l)
		case expired(l, time.Now()):
			err = m.expire(ctx, l)
		case l.State == StateActive && m.gw != nil && len(allowed(l)) > 0:
			// The gateway may have restarted (charon forgets loaded conns).
			err = m.gw.Allow(ctx, allowed(l)...)
		}
		if err != nil {
			m.log.Error("resume", "lease", l.ID, "state", l.State, "err", err)
		}
	}
	return nil
}

// Sync refreshes every active lease, and returns those whose end passed,
// each poll interval until ctx ends.
func (m *Manager) Sync(ctx context.Context) {
	t := time.NewTicker(m.cfg.poll())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ls, err := m.Leases(ctx)
		if err != nil {
			m.log.Error("sync", "err", err)
			continue
		}
		for _, l := range ls {
			if err := m.tend(ctx, l); err != nil {
				m.log.Warn("sync", "lease", l.ID, "err", err)
			}
		}
	}
}

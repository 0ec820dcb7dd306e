package borrower

import (
	"context"
	"fmt"
	"slices"
	"time"

	"ferry/api"
	"ferry/gatewayctl"
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
	var add []gatewayctl.Entry
	for _, s := range got.Servers {
		if s.SPKIPin != "" && !slices.Contains(l.Pins, s.SPKIPin) {
			add = append(add, gatewayctl.Entry{Pin: s.SPKIPin, Lease: got.ID, Expires: &got.Expires})
		}
	}
	if len(add) > 0 && m.gw != nil {
		if err := m.gw.Add(ctx, add...); err != nil {
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
	m.shutdownKeepers(l)
	if m.gw != nil && l.Lender.ID != "" {
		if _, err := m.gw.RemoveLease(ctx, l.Lender.ID); err != nil {
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

// shutdownKeepers asks each server's keeper to shut down. The keeper
// has no shutdown endpoint yet and the borrower does not yet learn the
// servers' tunnel addresses, so this logs what it could not do.
func (m *Manager) shutdownKeepers(l Lease) {
	for _, s := range l.Lender.Servers {
		m.log.Warn("keeper shutdown skipped: no tunnel address known for the server and no keeper shutdown endpoint",
			"lease", l.ID, "server", s.ID, "keeper_port", m.cfg.KeeperPort)
	}
}

// Resume drives what a killed borrower left in flight, then keeps active
// leases in sync with the lender until ctx ends.
func (m *Manager) Resume(ctx context.Context) error {
	ls, err := m.Leases(ctx)
	if err != nil {
		return err
	}
	for _, l := range ls {
		switch l.State {
		case StateRequesting:
			_, err = m.drive(ctx, l)
		case StateReturning:
			_, err = m.finishReturn(ctx, l)
		}
		if err != nil {
			m.log.Error("resume", "lease", l.ID, "state", l.State, "err", err)
		}
	}
	return nil
}

// Sync refreshes every active lease each poll interval until ctx ends.
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
			if _, err := m.Refresh(ctx, l); err != nil {
				m.log.Warn("sync", "lease", l.ID, "err", err)
			}
		}
	}
}

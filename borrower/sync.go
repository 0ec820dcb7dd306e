package borrower

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"ferry/api"
	"ferry/store"
)

// Refresh reads an active lease from the lender. A lease the lender
// ended (returned at the lender, or expired there) is returned here too,
// which takes its keys off the gateway and its exports off the NFS server
// in this same pass. Otherwise newly enrolled servers get their export
// (to their tunnel address alone), then their key on the gateway.
func (m *Manager) Refresh(ctx context.Context, l Lease) (Lease, error) {
	if l.State != StateActive {
		return l, nil
	}
	var got api.Lease
	if err := m.lender.Call(ctx, "GET", api.PathLeases+"/"+l.Lender.ID, nil, &got); err != nil {
		return l, fmt.Errorf("refresh lease %s (lender %s): %w: %w", l.ID, l.Lender.ID, errLender, err)
	}
	return m.refreshWith(ctx, l, got)
}

// refreshWith is Refresh with got, the lender's answer for l.
func (m *Manager) refreshWith(ctx context.Context, l Lease, got api.Lease) (Lease, error) {
	if l.State != StateActive {
		return l, nil
	}
	if got.ID != l.Lender.ID {
		return l, fmt.Errorf("refresh lease %s: the lender answered for lease %.80q, not %s", l.ID, got.ID, l.Lender.ID)
	}
	if len(l.Addrs) < l.Count { // recorded before tunnel addresses existed
		err := m.st.Update(ctx, func(tx store.Tx) error {
			if err := assignAddrs(tx, m.cfg, &l); err != nil {
				return err
			}
			return tx.Put(store.Leases, l.ID, l)
		})
		if err != nil {
			return l, fmt.Errorf("refresh lease %s: tunnel addresses: %w", l.ID, err)
		}
	}
	if len(got.Servers) > len(l.Addrs) || len(got.Servers) > len(l.Roots) {
		return l, fmt.Errorf("refresh lease %s: the lender reports %d servers, the lease has %d roots and %d tunnel addresses",
			l.ID, len(got.Servers), len(l.Roots), len(l.Addrs))
	}
	if ended := endedAtLender(got, time.Now()); ended != "" {
		return m.endAtLender(ctx, l, got, ended)
	}
	pins := len(l.Pins)
	l, err := m.dropConflicted(ctx, l, got)
	if err != nil {
		return l, err
	}
	var add []Key
	for i, s := range got.Servers {
		if s.SPKIPin != "" && !slices.Contains(l.Pins, s.SPKIPin) {
			add = append(add, Key{Lease: got.ID, Server: s.ID, Pin: s.SPKIPin, Expires: got.Expires, VIP: l.Addrs[i], CertPEM: s.Certificate})
		}
	}
	if len(add) == 0 && len(l.Pins) == pins && sameLease(l.Lender, got) {
		// Nothing changed: no write (at 1,000 servers a lease is 1.5 MB
		// of JSON, rewritten every poll before), and the exports, which
		// follow the store, stay as they are (Sync keeps them anyway).
		return l, nil
	}
	l.Lender = got
	if err := m.put(ctx, l); err != nil {
		return l, err
	}
	// The exports follow the store, which now holds the new servers (and
	// no key of a server in conflict): a new server's export comes before
	// its key, so it can mount its root as soon as it is let in.
	if err := m.syncExports(ctx); err != nil {
		return l, fmt.Errorf("lease %s: %w", l.ID, err)
	}
	if len(add) == 0 {
		return l, nil
	}
	if m.gw != nil {
		if err := m.gw.Allow(ctx, add...); err != nil {
			return l, fmt.Errorf("gateway allow list for lease %s: %w", l.ID, err)
		}
	}
	for _, e := range add {
		l.Pins = append(l.Pins, e.Pin)
		m.log.Info("key allowed at the gateway, root exported to its tunnel address", "lease", l.ID, "server", e.Server, "pin", e.Pin, "address", e.VIP)
	}
	return l, m.put(ctx, l)
}

// sameLease reports whether the lender's answer a and b say the same:
// their JSON is what the store would hold.
func sameLease(a, b api.Lease) bool {
	ea, err := json.Marshal(a)
	if err != nil {
		return false
	}
	eb, err := json.Marshal(b)
	return err == nil && bytes.Equal(ea, eb)
}

// endedAtLender says why the lender's view of a lease means it is over
// ("" while it is not): returned there, or past the end the lender set.
func endedAtLender(got api.Lease, now time.Time) string {
	switch {
	case got.State == api.LeaseReturned:
		return "returned at the lender"
	case got.State != api.LeaseActive:
		return fmt.Sprintf("the lender reports state %.40q", got.State)
	case !got.Expires.IsZero() && !now.Before(got.Expires):
		return "expired at the lender"
	}
	return ""
}

// endAtLender returns a lease the lender ended: its servers are powered
// off by the lender, so none is asked to shut down; the return cuts them
// off the gateway and the NFS server first.
func (m *Manager) endAtLender(ctx context.Context, l Lease, got api.Lease, why string) (Lease, error) {
	m.log.Warn("lease ended by the lender; removing its keys and exports", "lease", l.ID, "lender_lease", got.ID, "why", why)
	l.Lender.State, l.Lender.Returned = got.State, got.Returned
	l.State = StateReturning
	l.Shutdown = make([]Shutdown, len(l.Lender.Servers))
	for i, s := range l.Lender.Servers {
		l.Shutdown[i] = Shutdown{Server: s.ID, Outcome: ShutdownSkipped, Detail: "lease " + why}
	}
	if err := m.put(ctx, l); err != nil {
		return l, err
	}
	return m.finishReturn(ctx, l)
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
	// A copy still running stops now and removes what it copied; none of
	// this lease's starts again.
	m.cancelRoots(ctx, l)
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
	if !l.Cut {
		l.Cut = true
		if err := m.put(ctx, l); err != nil {
			return l, err
		}
	}
	// Before the roots go: ganesha must not serve a directory rootprep
	// archives or deletes.
	if err := m.syncExports(ctx); err != nil {
		return l, fmt.Errorf("return %s: %w", l.ID, err)
	}
	var got api.Lease
	if err := m.lender.Call(ctx, "POST", api.PathLeases+"/"+l.Lender.ID+api.PathReturn, nil, &got); err != nil {
		return l, fmt.Errorf("return %s: lender: %w", l.ID, err)
	}
	// The lender revoked the lease's certificates: the gateway learns it
	// now, not at the next periodic relay.
	if err := m.relayCRL(ctx); err != nil {
		m.log.Warn("return: lender CRL not relayed to the gateway", "lease", l.ID, "err", err)
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
	for i, s := range l.Lender.Servers {
		if s.SPKIPin != "" && slices.Contains(l.Pins, s.SPKIPin) {
			k := Key{Lease: l.Lender.ID, Server: s.ID, Pin: s.SPKIPin, Expires: l.Lender.Expires, CertPEM: s.Certificate}
			if i < len(l.Addrs) {
				k.VIP = l.Addrs[i]
			}
			out = append(out, k)
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

// tend is one pass of Sync over an active lease: return it if its end
// passed, else refresh it from the lender. The lender is asked with the
// ETag of what the store holds: an unchanged lease (a 304, no body) is
// neither decoded nor written here, which at 1,000 servers saves 1.5 MB
// of JSON read, decoded and compared per lease and poll.
func (m *Manager) tend(ctx context.Context, h leaseHead) error {
	if h.expired(time.Now()) {
		l, err := m.Lease(ctx, h.ID)
		if err != nil || !expired(l, time.Now()) {
			return err
		}
		return m.expire(ctx, l)
	}
	var got api.Lease
	changed, err := m.lender.GetIfChanged(ctx, api.PathLeases+"/"+h.LenderID, h.LenderTag, &got)
	if err != nil {
		return fmt.Errorf("refresh lease %s (lender %s): %w: %w", h.ID, h.LenderID, errLender, err)
	}
	if !changed {
		m.events.pollsUnchanged.Add(1)
		return nil
	}
	m.events.pollsChanged.Add(1)
	return m.refreshLatest(ctx, h.ID, got)
}

// Resume drives what a killed borrower left in flight, then keeps active
// leases in sync with the lender until ctx ends.
func (m *Manager) Resume(ctx context.Context) error {
	ls, err := m.Leases(ctx)
	if err != nil {
		return err
	}
	// Exports first, from the store: those of active leases back (a
	// restarted NFS server, a lost file), stale ones gone.
	if err := m.syncExports(ctx); err != nil {
		m.log.Error("resume: nfs exports", "err", err)
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
		if l.State == StateActive && !expired(l, time.Now()) {
			// Copies a stop or a crash cut start again from nothing.
			m.startRoots(l)
		}
		if err != nil {
			m.log.Error("resume", "lease", l.ID, "state", l.State, "err", err)
		}
	}
	return nil
}

// Sync refreshes every active lease, and returns those whose end passed,
// at once and then each poll interval until ctx ends; it watches booting
// leases (watch.go), one that just became active at once.
func (m *Manager) Sync(ctx context.Context) {
	t := time.NewTicker(m.cfg.poll())
	defer t.Stop()
	var crlAt time.Time
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-m.syncNow: // a lease just became active: watch it now
			}
		}
		x, err := m.fetch.index(ctx)
		if err != nil {
			m.log.Error("sync", "err", err)
			continue
		}
		if err := m.syncExports(ctx); err != nil {
			m.log.Warn("sync: nfs exports", "err", err)
		}
		if time.Since(crlAt) >= crlEvery {
			crlAt = time.Now()
			if err := m.relayCRL(ctx); err != nil {
				m.log.Warn("sync: lender CRL not relayed to the gateway", "err", err)
			}
		}
		active := x.active()
		m.watchBooting(ctx, active)
		for _, h := range active {
			if m.watchHeld(h.ID) && !h.expired(time.Now()) {
				continue // the lender answers its watch when it changes
			}
			if err := m.tend(ctx, h); err != nil {
				m.log.Warn("sync", "lease", h.ID, "err", err)
			}
		}
	}
}

package lender

import (
	"context"
	"errors"
	"fmt"
	"time"

	"ferry/api"
	"ferry/lenderca"
	"ferry/store"
)

// Server phases the lender sets itself; agents report the rest.
const (
	PhaseBooting   = "booting"
	PhaseEnrolled  = "enrolled"
	PhaseReturning = "returning"
	PhaseReturned  = "returned"
	// PhaseConflict: two machines claimed one boot (a second script
	// fetch, an enrollment from another address, a second key); no
	// certificate until an operator clears it.
	PhaseConflict = "conflict"
	// PhasePowerError: a power action the lender needed failed; the
	// reason is the member's Error. At boot the token stays valid, so a
	// server powered by hand still enrolls; at return the power off is
	// tried again at the next start or by `server clear`.
	PhasePowerError = "power-error"
	// PhaseBootTimeout: no enrollment within the token's life; the
	// boot's tokens are withdrawn until `server clear` starts a new one.
	PhaseBootTimeout = "boot-timeout"
)

// lenderPhase says whether p is a state the lender sets itself, which
// no agent may report.
func lenderPhase(p string) bool {
	switch p {
	case PhaseBooting, PhaseEnrolled, PhaseReturning, PhaseReturned, PhaseConflict, PhasePowerError, PhaseBootTimeout:
		return true
	}
	return false
}

// RequestLease is RequestLeaseFor the operator: the lease belongs to
// DefaultBorrower.
func (m *Manager) RequestLease(ctx context.Context, req api.LeaseRequest) (api.Lease, error) {
	return m.RequestLeaseFor(ctx, DefaultBorrower, req)
}

// idemKey scopes an idempotency key to its borrower: the same key from
// two borrowers is two requests.
func idemKey(owner, key string) string { return owner + "/" + key }

// RequestLeaseFor leases req.Count free servers to borrower in one
// transaction, or none: a retry by the same borrower with the same
// idempotency key returns the first lease.
func (m *Manager) RequestLeaseFor(ctx context.Context, borrower string, req api.LeaseRequest) (api.Lease, error) {
	var rec leaseRec
	created := false
	err := m.st.Update(ctx, func(tx store.Tx) error {
		var id string
		err := tx.Get(store.Idem, idemKey(borrower, req.IdempotencyKey), &id)
		if err != nil && borrower == DefaultBorrower {
			err = tx.Get(store.Idem, req.IdempotencyKey, &id) // stored before keys were scoped
		}
		if err == nil {
			rec, _, err = getLease(tx, id)
			return err
		}
		free, err := freeServers(tx, req.Pool, req.Count)
		if err != nil {
			return err
		}
		now := m.now().UTC()
		rec = leaseRec{Request: req, Owner: borrower, Lease: api.Lease{
			ID: newID("L"), Key: req.IdempotencyKey, State: api.LeaseActive, Borrower: borrower,
			Created: now, Expires: now.Add(time.Duration(req.DurationSeconds) * time.Second),
		}}
		for i, s := range free {
			s.State, s.LeaseID, s.LastError, s.LastErrorAt = ServerLeased, rec.ID, "", time.Time{}
			if err := tx.Put(store.Servers, s.MAC, s); err != nil {
				return err
			}
			ls := api.LeaseServer{ID: s.ID, MAC: s.MAC, Phase: PhaseBooting}
			rec.Servers = append(rec.Servers, ls)
			if err := putMember(tx, rec.ID, i, member{LeaseServer: ls, Root: req.Roots[i]}); err != nil {
				return err
			}
			if err := recordEvent(tx, Event{At: now, Kind: EventState, MAC: s.MAC, Lease: rec.ID, Source: "lender",
				What: fmt.Sprintf("leased to %s (pool %s): booting", borrower, s.Pool)}); err != nil {
				return err
			}
		}
		created = true
		if err := tx.Put(store.Idem, idemKey(borrower, req.IdempotencyKey), rec.ID); err != nil {
			return err
		}
		return putLease(tx, rec)
	})
	if err != nil {
		return api.Lease{}, err
	}
	if created {
		m.metrics.leases.Add(1)
		m.log.Info("lease made", "lease", rec.ID, "borrower", borrower, "servers", len(rec.Servers), "gateway", req.Gateway)
		if err := m.startBoots(ctx, rec, false); err != nil {
			m.log.Error("boots not started; resumed at the next start", "lease", rec.ID, "err", err)
		}
	}
	return rec.Lease, nil
}

// freeServers picks count free servers of pool (any pool when empty).
func freeServers(tx store.Tx, pool string, count int) ([]Server, error) {
	var free []Server
	err := tx.Each(store.Servers, "", func(_ string, dec func(any) error) error {
		var s Server
		if err := dec(&s); err != nil {
			return err
		}
		if s.State == ServerFree && (pool == "" || s.Pool == pool) && len(free) < count {
			free = append(free, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(free) < count {
		return nil, &api.FieldError{Field: "count",
			Reason: fmt.Sprintf("%d servers asked, pool %q has %d free", count, pool, len(free))}
	}
	return free, nil
}

// startBoots starts one boot per booting server: a fresh token each, in
// one transaction, and power on. A restarted manager (resume) first takes
// back the boots the store shows bound or enrolled, and keeps the
// earlier unbound tokens, for a server may already be running A with one.
func (m *Manager) startBoots(ctx context.Context, rec leaseRec, resume bool) error {
	var idx []int
	for i, s := range rec.Servers {
		if resume {
			held, err := m.resumeBoot(ctx, rec, i)
			if err != nil {
				return err
			}
			if held {
				continue
			}
		}
		if s.Phase == PhasePowerError && resume {
			// A boot whose power on failed is tried again at a restart
			// (the driver or its configuration may have been fixed).
			if err := m.retryPowerError(ctx, rec.ID, i); err != nil {
				return err
			}
			s.Phase = PhaseBooting
		}
		if s.Phase == PhaseBooting {
			idx = append(idx, i)
		}
	}
	if err := m.issueTokens(ctx, rec, idx, !resume); err != nil {
		return err
	}
	for _, i := range idx {
		var srv Server
		if err := m.st.View(ctx, func(tx store.Tx) error { return tx.Get(store.Servers, rec.Servers[i].MAC, &srv) }); err != nil {
			return fmt.Errorf("server %s: %w", rec.Servers[i].MAC, err)
		}
		m.powerOnLater(srv, rec.ID, i)
	}
	return nil
}

// powerOnLater powers a server on in the background: a driver may take
// minutes (or wait for a person) and must not hold up the lease request.
// A failure puts the member in power-error with the driver's reason.
func (m *Manager) powerOnLater(s Server, leaseID string, i int) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), powerTimeout)
		defer cancel()
		if err := m.powerAction(ctx, s, leaseID, "on"); err != nil {
			m.log.Error("power on failed; the server will not boot until powered by hand", "mac", s.MAC, "err", err)
			m.memberFailed(context.Background(), leaseID, i, PhaseBooting, PhasePowerError, err.Error())
		}
	}()
}

// issueTokens stores the hashes of new tokens for the servers at idx of
// a lease and keeps the plaintexts, for netboot, in memory only.
func (m *Manager) issueTokens(ctx context.Context, rec leaseRec, idx []int, dropOld bool) error {
	boots := make([]bootState, 0, len(idx))
	hashes := make([]string, 0, len(idx))
	for _, i := range idx {
		token, hash := lenderca.NewToken()
		s := rec.Servers[i]
		b := Boot{MAC: s.MAC, LeaseID: rec.ID, ServerID: s.ID, ManagerURL: m.url, CAPin: m.ca.Fingerprint(), Token: token, State: bootPending}
		b.KernelParam = fmt.Sprintf("ferry.lender=%s ferry.ca=%s ferry.token=%s ferry.trace=%s-%s",
			b.ManagerURL, b.CAPin, b.Token, rec.ID, s.ID)
		boots, hashes = append(boots, bootState{Boot: b, index: i, hash: hash}), append(hashes, hash)
	}
	expires := m.now().Add(m.tokenLife()).UTC()
	err := m.st.Update(ctx, func(tx store.Tx) error {
		for k, i := range idx {
			if dropOld {
				if err := dropTokens(tx, rec.ID, i); err != nil {
					return err
				}
			}
			mem, err := getMember(tx, rec.ID, i)
			if err != nil {
				return err
			}
			mem.Tokens, mem.Boot = append(mem.Tokens, hashes[k]), hashes[k]
			if err := putMember(tx, rec.ID, i, mem); err != nil {
				return err
			}
			t := tokenRec{MAC: mem.MAC, LeaseID: rec.ID, ServerID: mem.ID, Index: i, Expires: expires}
			if err := tx.Put(store.Tokens, hashes[k], t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tokens for lease %s: %w", rec.ID, err)
	}
	m.mu.Lock()
	for _, b := range boots {
		m.boots[b.MAC] = b
	}
	m.mu.Unlock()
	for _, b := range boots {
		m.watchBoot(rec.ID, b.index, b.MAC, b.hash, m.tokenLife())
	}
	return nil
}

// BootFor is the pending boot of a MAC: its token and parameters, until
// it enrolls. ok is false for unknown MACs, servers not booting a lease,
// and boots whose token this process no longer holds.
func (m *Manager) BootFor(mac string) (Boot, bool) {
	mac, err := api.NormalizeMAC(mac)
	if err != nil {
		return Boot{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.boots[mac]
	if !ok || b.Token == "" || b.State == bootEnrolled {
		return Boot{}, false
	}
	return b.Boot, true
}

// admitted is netboot's question: may this MAC netboot? Yes while its
// lease has a boot of it, pending or not: a second script fetch must
// reach the lender to be seen as the conflict it is. enrolled says the
// boot has enrolled: the server runs the borrower's system now.
func (m *Manager) admitted(mac string) (ok, enrolled bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.boots[mac]
	return ok, ok && b.State == bootEnrolled
}

func (m *Manager) leaseRec(ctx context.Context, id string) (leaseRec, error) {
	var rec leaseRec
	err := m.st.View(ctx, func(tx store.Tx) (err error) {
		rec, _, err = getLease(tx, id)
		return err
	})
	return rec, err
}

// noLease is the refusal of a lease that does not exist or is another
// borrower's: the same 404, so that IDs tell nothing.
func noLease(id string) error {
	return &api.FieldError{Field: "lease", Reason: fmt.Sprintf("no lease %q", id)}
}

// Lease returns any lease by id (the operator's view).
func (m *Manager) Lease(ctx context.Context, id string) (api.Lease, error) {
	return m.leaseOf(ctx, operator, id)
}

// LeaseOf returns borrower's lease by id; another borrower's is not found.
func (m *Manager) LeaseOf(ctx context.Context, borrower, id string) (api.Lease, error) {
	return m.leaseOf(ctx, owner{name: borrower}, id)
}

func (m *Manager) leaseOf(ctx context.Context, o owner, id string) (api.Lease, error) {
	rec, err := m.leaseRec(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !o.owns(rec)) {
		return api.Lease{}, noLease(id)
	}
	return o.sees(rec.publicLease()), err
}

// publicLease is the lease as its borrower and the operator read it.
func (rec leaseRec) publicLease() api.Lease {
	l := rec.Lease
	l.Borrower = rec.owner()
	return l
}

// Leases lists every lease (the operator's view).
func (m *Manager) Leases(ctx context.Context) ([]api.Lease, error) { return m.leasesOf(ctx, operator) }

// LeasesOf lists borrower's leases.
func (m *Manager) LeasesOf(ctx context.Context, borrower string) ([]api.Lease, error) {
	return m.leasesOf(ctx, owner{name: borrower})
}

func (m *Manager) leasesOf(ctx context.Context, o owner) ([]api.Lease, error) {
	out := []api.Lease{}
	err := m.st.View(ctx, func(tx store.Tx) error {
		recs, err := allLeases(tx)
		for _, rec := range recs {
			if o.owns(rec) {
				out = append(out, o.sees(rec.publicLease()))
			}
		}
		return err
	})
	return out, err
}

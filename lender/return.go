package lender

import (
	"context"
	"fmt"
	"slices"
	"time"

	"ferry/api"
	"ferry/store"
)

// ReturnLease ends a lease: one transaction revokes its certificates,
// drops its tokens and marks its servers returning; then, in the
// background, each server is powered off and put back in its pool.
// Returning twice is harmless. This is the operator's: any lease.
func (m *Manager) ReturnLease(ctx context.Context, id string) (api.Lease, error) {
	return m.returnLease(ctx, operator, id)
}

// ReturnLeaseOf returns borrower's lease; another borrower's is not found.
func (m *Manager) ReturnLeaseOf(ctx context.Context, borrower, id string) (api.Lease, error) {
	return m.returnLease(ctx, owner{name: borrower}, id)
}

func (m *Manager) returnLease(ctx context.Context, o owner, id string) (api.Lease, error) {
	var rec leaseRec
	err := m.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if rec, _, err = getLease(tx, id); err != nil || !o.owns(rec) {
			return noLease(id)
		}
		if rec.State == api.LeaseReturned {
			return nil
		}
		now := m.now().UTC()
		rec.State, rec.Returned = api.LeaseReturned, now
		for i := range rec.Servers {
			if err := retireMember(tx, rec.ID, i, now); err != nil {
				return err
			}
			if rec.Servers[i].Phase != PhaseReturned {
				rec.Servers[i].Phase = PhaseReturning
			}
			if err := recordEvent(tx, Event{At: now, Kind: EventState, MAC: rec.Servers[i].MAC, Lease: rec.ID, Source: o.source(),
				What: "returning: certificate revoked, power off"}); err != nil {
				return err
			}
		}
		return putLease(tx, rec)
	})
	if err != nil {
		return api.Lease{}, err
	}
	m.mu.Lock()
	for _, s := range rec.Servers {
		delete(m.boots, s.MAC)
	}
	m.mu.Unlock()
	m.log.Info("lease returning: certificates revoked", "lease", rec.ID, "borrower", rec.owner(), "servers", len(rec.Servers))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), powerTimeout)
		defer cancel()
		if _, err := m.finishReturn(ctx, rec); err != nil {
			m.log.Error("return not finished; resumed at the next start", "lease", rec.ID, "err", err)
		}
	}()
	return o.sees(rec.publicLease()), nil
}

// retireMember drops a server's tokens, revokes its certificate and marks
// it returning.
func retireMember(tx store.Tx, leaseID string, i int, now time.Time) error {
	if err := dropTokens(tx, leaseID, i); err != nil {
		return err
	}
	mem, err := getMember(tx, leaseID, i)
	if err != nil {
		return err
	}
	if err := revokeMember(tx, mem, now); err != nil {
		return err
	}
	if mem.Phase != PhaseReturned {
		mem.Phase = PhaseReturning
	}
	return putMember(tx, leaseID, i, mem)
}

func revoke(tx store.Tx, serial string, at time.Time) error {
	var c certRec
	if err := tx.Get(store.Certs, serial, &c); err != nil {
		return err
	}
	if !c.Revoked.IsZero() {
		return nil
	}
	c.Revoked = at
	return tx.Put(store.Certs, serial, c)
}

// finishReturn powers off every returning server and frees it, one
// transaction per server, so a crash resumes where it stopped. It runs
// beside the request that returned the lease, whose answer is made of the
// same record: the servers it marks returned are its own copy.
func (m *Manager) finishReturn(ctx context.Context, rec leaseRec) (api.Lease, error) {
	rec.Servers = slices.Clone(rec.Servers)
	for i := range rec.Servers {
		s := rec.Servers[i]
		if s.Phase != PhaseReturning && s.Phase != PhasePowerError {
			continue // a power error is tried again at the next start
		}
		var srv Server
		if err := m.st.View(ctx, func(tx store.Tx) error { return tx.Get(store.Servers, s.MAC, &srv) }); err != nil {
			return rec.Lease, err
		}
		if err := m.powerAction(ctx, srv, rec.ID, "off"); err != nil {
			m.log.Error("power off at return failed; server stays out of the pool", "lease", rec.ID, "mac", s.MAC, "err", err)
			m.memberFailed(ctx, rec.ID, i, s.Phase, PhasePowerError,
				fmt.Sprintf("power off at return: %v; the server stays out of the pool until 'ferry lender server clear %s'", err, s.MAC))
			continue
		}
		err := m.st.Update(ctx, func(tx store.Tx) error {
			mem, err := getMember(tx, rec.ID, i)
			if err != nil {
				return err
			}
			mem.Phase, mem.Error = PhaseReturned, ""
			srv.State, srv.LeaseID, srv.LastError, srv.LastErrorAt = ServerFree, "", "", time.Time{}
			if err := recordEvent(tx, Event{At: m.now().UTC(), Kind: EventState, MAC: srv.MAC, Lease: rec.ID, Source: "lender",
				What: "returned: powered off, free in pool " + srv.Pool}); err != nil {
				return err
			}
			if err := tx.Put(store.Servers, srv.MAC, srv); err != nil {
				return err
			}
			if err := endDHCPLease(tx, srv.MAC); err != nil {
				return err
			}
			return putMember(tx, rec.ID, i, mem)
		})
		if err != nil {
			return rec.Lease, err
		}
		rec.Servers[i].Phase = PhaseReturned
	}
	m.log.Info("lease returned", "lease", rec.ID, "servers", len(rec.Servers))
	return rec.Lease, nil
}

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
)

// RequestLease leases req.Count free servers in one transaction, or none:
// a retry with the same idempotency key returns the first lease.
func (m *Manager) RequestLease(ctx context.Context, req api.LeaseRequest) (api.Lease, error) {
	var rec leaseRec
	created := false
	err := m.st.Update(ctx, func(tx store.Tx) error {
		var id string
		if err := tx.Get(store.Idem, req.IdempotencyKey, &id); err == nil {
			return tx.Get(store.Leases, id, &rec)
		}
		free, err := freeServers(tx, req.Pool, req.Count)
		if err != nil {
			return err
		}
		now := m.now().UTC()
		rec = leaseRec{Request: req, Lease: api.Lease{
			ID: newID("L"), Key: req.IdempotencyKey, State: api.LeaseActive,
			Created: now, Expires: now.Add(time.Duration(req.DurationSeconds) * time.Second),
		}}
		for _, s := range free {
			s.State, s.LeaseID = ServerLeased, rec.ID
			if err := tx.Put(store.Servers, s.MAC, s); err != nil {
				return err
			}
			rec.Servers = append(rec.Servers, api.LeaseServer{ID: s.ID, MAC: s.MAC, Phase: PhaseBooting})
		}
		created = true
		if err := tx.Put(store.Idem, req.IdempotencyKey, rec.ID); err != nil {
			return err
		}
		return tx.Put(store.Leases, rec.ID, rec)
	})
	if err != nil {
		return api.Lease{}, err
	}
	if created {
		m.metrics.leases.Add(1)
		m.log.Info("lease made", "lease", rec.ID, "servers", len(rec.Servers), "gateway", req.Gateway)
		m.startBoots(ctx, rec, true)
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

// startBoots issues a fresh token per booting server and powers it on.
// dropOld withdraws earlier tokens; a restarted manager keeps them, for a
// server may already be running A with one.
func (m *Manager) startBoots(ctx context.Context, rec leaseRec, dropOld bool) {
	for i, s := range rec.Servers {
		if s.Phase != PhaseBooting {
			continue
		}
		if err := m.issueBoot(ctx, rec.ID, s, i, dropOld); err != nil {
			m.log.Error("boot not started", "lease", rec.ID, "mac", s.MAC, "err", err)
		}
	}
}

// issueBoot issues a token and powers the server on.
func (m *Manager) issueBoot(ctx context.Context, leaseID string, s api.LeaseServer, index int, dropOld bool) error {
	if err := m.issueToken(ctx, leaseID, s, index, dropOld); err != nil {
		return err
	}
	var srv Server
	if err := m.st.View(ctx, func(tx store.Tx) error { return tx.Get(store.Servers, s.MAC, &srv) }); err != nil {
		return fmt.Errorf("server %s: %w", s.MAC, err)
	}
	m.powerOnLater(srv)
	return nil
}

// issueToken stores the hash of a new token and keeps the plaintext,
// for netboot, in memory only.
func (m *Manager) issueToken(ctx context.Context, leaseID string, s api.LeaseServer, index int, dropOld bool) error {
	token, hash := lenderca.NewToken()
	err := m.st.Update(ctx, func(tx store.Tx) error {
		if dropOld {
			if err := dropTokens(tx, s.ID); err != nil {
				return err
			}
		}
		return tx.Put(store.Tokens, hash, tokenRec{MAC: s.MAC, LeaseID: leaseID, ServerID: s.ID,
			Index: index, Expires: m.now().Add(m.tokenTTL).UTC()})
	})
	if err != nil {
		return fmt.Errorf("token for %s: %w", s.MAC, err)
	}
	b := Boot{MAC: s.MAC, LeaseID: leaseID, ServerID: s.ID, ManagerURL: m.url, CAPin: m.ca.Fingerprint(), Token: token}
	b.KernelParam = fmt.Sprintf("ferry.lender=%s ferry.ca=%s ferry.token=%s ferry.trace=%s-%s",
		b.ManagerURL, b.CAPin, b.Token, leaseID, s.ID)
	m.mu.Lock()
	m.boots[s.MAC] = b
	m.mu.Unlock()
	return nil
}

// powerOnLater powers a server on in the background: a driver may take
// minutes (or wait for a person) and must not hold up the lease request.
func (m *Manager) powerOnLater(s Server) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), powerTimeout)
		defer cancel()
		if err := m.powerSwitch(ctx, s, true); err != nil {
			m.log.Error("power on failed; the server will not boot until powered by hand", "mac", s.MAC, "err", err)
		}
	}()
}

func dropTokens(tx store.Tx, serverID string) error {
	var stale []string
	err := tx.Each(store.Tokens, "", func(k string, dec func(any) error) error {
		var t tokenRec
		if err := dec(&t); err != nil {
			return err
		}
		if t.ServerID == serverID && t.Used.IsZero() {
			stale = append(stale, k)
		}
		return nil
	})
	for _, k := range stale {
		if err == nil {
			err = tx.Delete(store.Tokens, k)
		}
	}
	return err
}

// BootFor is netboot's question: what does this MAC boot now? ok is false
// for unknown MACs and servers not booting a lease.
func (m *Manager) BootFor(mac string) (Boot, bool) {
	mac, err := api.NormalizeMAC(mac)
	if err != nil {
		return Boot{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.boots[mac]
	return b, ok
}

func (m *Manager) leaseRec(ctx context.Context, id string) (leaseRec, error) {
	var rec leaseRec
	err := m.st.View(ctx, func(tx store.Tx) error { return tx.Get(store.Leases, id, &rec) })
	return rec, err
}

// Lease returns a lease by id.
func (m *Manager) Lease(ctx context.Context, id string) (api.Lease, error) {
	var rec leaseRec
	err := m.st.View(ctx, func(tx store.Tx) error { return tx.Get(store.Leases, id, &rec) })
	if errors.Is(err, store.ErrNotFound) {
		return api.Lease{}, &api.FieldError{Field: "lease", Reason: fmt.Sprintf("no lease %q", id)}
	}
	return rec.Lease, err
}

// Leases lists every lease.
func (m *Manager) Leases(ctx context.Context) ([]api.Lease, error) {
	var out []api.Lease
	err := m.st.View(ctx, func(tx store.Tx) error {
		return tx.Each(store.Leases, "", func(_ string, dec func(any) error) error {
			var rec leaseRec
			if err := dec(&rec); err != nil {
				return err
			}
			out = append(out, rec.Lease)
			return nil
		})
	})
	return out, err
}

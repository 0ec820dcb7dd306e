package lender

import (
	"context"
	"fmt"
	"time"

	"ferry/api"
	"ferry/lenderca"
	"ferry/store"
)

// maxPhases bounds the reports kept per server.
const maxPhases = 64

// ReportPhase records a phase an agent reports. who is the subject of the
// agent's client certificate; it must match the report, and the
// certificate must not be revoked.
func (m *Manager) ReportPhase(ctx context.Context, who lenderca.Subject, serial string, p api.PhaseReport) error {
	if p.LeaseID != who.LeaseID || p.ServerID != who.ServerID {
		return &api.FieldError{Field: "lease_id", Reason: fmt.Sprintf("%s/%s, but the certificate is for %s", p.LeaseID, p.ServerID, who.CommonName())}
	}
	if lenderPhase(p.Phase) {
		// The lender's own states: an agent naming one would move the
		// server in the lender's state machine.
		return &api.FieldError{Field: "phase", Reason: fmt.Sprintf("%q is a state the lender sets, not a phase an agent reports", p.Phase)}
	}
	err := m.st.Update(ctx, func(tx store.Tx) error {
		var c certRec
		if err := tx.Get(store.Certs, serial, &c); err != nil || !c.Revoked.IsZero() {
			return &api.FieldError{Field: "certificate", Reason: fmt.Sprintf("serial %s is unknown or revoked", serial)}
		}
		var rec leaseRec
		if err := tx.Get(store.Leases, p.LeaseID, &rec); err != nil || rec.State != api.LeaseActive {
			return &api.FieldError{Field: "lease_id", Reason: fmt.Sprintf("lease %s is not active", p.LeaseID)}
		}
		mem, err := getMember(tx, c.LeaseID, c.Index)
		if err != nil || mem.ID != p.ServerID {
			return &api.FieldError{Field: "server_id", Reason: fmt.Sprintf("%s is not in lease %s", p.ServerID, p.LeaseID)}
		}
		if len(mem.Phases) >= maxPhases {
			return &api.FieldError{Field: "phase", Reason: fmt.Sprintf("over %d reports for %s", maxPhases, mem.ID)}
		}
		mem.Phases = append(mem.Phases, p)
		mem.Phase = p.Phase
		e := Event{At: m.now().UTC(), Kind: EventPhase, MAC: mem.MAC, Lease: p.LeaseID, Source: "agent",
			What: fmt.Sprintf("phase %s ok in %s", p.Phase, p.End.Sub(p.Start).Round(time.Millisecond))}
		if p.Error != "" {
			mem.Phase = p.Phase + ":failed"
			mem.Error = fmt.Sprintf("phase %s failed: %s", p.Phase, p.Error)
			e.What, e.Error = "phase "+p.Phase+" failed", p.Error
			if err := setServerError(tx, mem.MAC, mem.Error, m.now().UTC()); err != nil {
				return err
			}
		}
		if err := recordEvent(tx, e); err != nil {
			return err
		}
		return putMember(tx, c.LeaseID, c.Index, mem)
	})
	if err != nil {
		return err
	}
	m.metrics.phase(p)
	m.log.Info("phase", "lease", p.LeaseID, "server", p.ServerID, "phase", p.Phase,
		"duration", p.End.Sub(p.Start), "bytes", p.Bytes, "error", p.Error)
	return nil
}

// CRL signs the current revocation list.
func (m *Manager) CRL(ctx context.Context) ([]byte, error) {
	var entries []lenderca.Revoked
	err := m.st.View(ctx, func(tx store.Tx) error {
		return tx.Each(store.Certs, "", func(serial string, dec func(any) error) error {
			var c certRec
			if err := dec(&c); err != nil {
				return err
			}
			if !c.Revoked.IsZero() {
				entries = append(entries, lenderca.Revoked{Serial: serial, At: c.Revoked})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return m.ca.CRL(entries, int64(len(entries))+1, m.now())
}

// Resume finishes what a killed manager left in flight: returns that
// were not finished, and boots that had no enrollment yet (with fresh
// tokens: the old ones lived only in the dead process's memory).
func (m *Manager) Resume(ctx context.Context) error {
	var recs []leaseRec
	err := m.st.View(ctx, func(tx store.Tx) (err error) {
		recs, err = allLeases(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	for _, rec := range recs {
		if rec.State == api.LeaseReturned {
			if _, err := m.finishReturn(ctx, rec); err != nil {
				return fmt.Errorf("resume return of %s: %w", rec.ID, err)
			}
			continue
		}
		if err := m.startBoots(ctx, rec, true); err != nil {
			return fmt.Errorf("resume boots of %s: %w", rec.ID, err)
		}
	}
	return nil
}

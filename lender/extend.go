package lender

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"time"

	"ferry/api"
	"ferry/lenderca"
	"ferry/store"
)

// ExtendLeaseOf lengthens borrower's lease to until; another borrower's
// lease is not found.
func (m *Manager) ExtendLeaseOf(ctx context.Context, borrower, id string, until time.Time) (api.Lease, error) {
	return m.extendLease(ctx, owner{name: borrower}, id, until)
}

// extendLease moves an active lease's end to until, in one transaction
// with a renewed certificate for every enrolled server: same key, same
// subject, until the new end. Earlier certificates stay valid until
// their own end (a keeper holds one) and are revoked with the lease. An
// until at or before the current end changes nothing, so a retry extends
// once; the whole lease stays within api.MaxDuration.
func (m *Manager) extendLease(ctx context.Context, o owner, id string, until time.Time) (api.Lease, error) {
	until = until.UTC().Truncate(time.Second) // what a certificate can say
	var rec leaseRec
	renewed := 0
	err := m.st.Update(ctx, func(tx store.Tx) error {
		var err error
		var mems []member
		renewed = 0
		if rec, mems, err = getLease(tx, id); err != nil || !o.owns(rec) {
			return noLease(id)
		}
		if rec.State != api.LeaseActive {
			return &api.FieldError{Field: "lease", Reason: fmt.Sprintf("%s is %s", id, rec.State)}
		}
		if !until.After(rec.Expires) {
			return nil
		}
		if longest := rec.Created.Add(api.MaxDuration * time.Second); until.After(longest) {
			return &api.FieldError{Field: "until", Reason: fmt.Sprintf("%s is past the longest lending (%d days from %s: %s)",
				until.Format(time.RFC3339), api.MaxDuration/86400, rec.Created.Format(time.RFC3339), longest.Format(time.RFC3339))}
		}
		now := m.now().UTC()
		rec.Expires = until
		for i, mem := range mems {
			ok, err := m.renew(tx, rec, i, mem, now)
			if err != nil {
				return err
			}
			if ok {
				renewed++
			}
		}
		return putLease(tx, rec)
	})
	if err != nil {
		return api.Lease{}, err
	}
	m.log.Info("lease extended", "lease", rec.ID, "borrower", rec.owner(), "until", rec.Expires, "certificates_renewed", renewed)
	l, err := m.leaseOf(ctx, o, id)
	return l, err
}

// renew issues member i a certificate for its key until rec's end, if it
// holds one that is live.
func (m *Manager) renew(tx store.Tx, rec leaseRec, i int, mem member, now time.Time) (bool, error) {
	switch mem.Phase {
	case PhaseConflict, PhaseReturning, PhaseReturned:
		return false, nil
	}
	if mem.CertSerial == "" {
		return false, nil
	}
	var c certRec
	if err := tx.Get(store.Certs, mem.CertSerial, &c); err != nil {
		return false, fmt.Errorf("renew %s: certificate %s: %w", mem.ID, mem.CertSerial, err)
	}
	if !c.Revoked.IsZero() {
		return false, nil
	}
	if len(c.DER) == 0 {
		m.log.Warn("certificate not renewed: issued before certificates were kept; it ends at its own end",
			"lease", rec.ID, "server", mem.ID, "serial", mem.CertSerial, "not_after", c.NotAfter)
		return false, nil
	}
	old, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return false, fmt.Errorf("renew %s: certificate %s: %w", mem.ID, mem.CertSerial, err)
	}
	// Sign reads only the key of a request; the key is the one the
	// server proved at enrollment, so no new proof is asked for.
	key := &x509.CertificateRequest{PublicKey: old.PublicKey, RawSubjectPublicKeyInfo: old.RawSubjectPublicKeyInfo}
	iss, err := m.ca.Sign(key, lenderca.Subject{LeaseID: rec.ID, ServerID: mem.ID}, now, rec.Expires)
	if err != nil {
		return false, err
	}
	nc := certRec{LeaseID: rec.ID, ServerID: mem.ID, Index: i, SPKIPin: iss.SPKIPin, NotAfter: rec.Expires, DER: iss.DER}
	if err := tx.Put(store.Certs, iss.Serial, nc); err != nil {
		return false, err
	}
	mem.Earlier = append(mem.Earlier, mem.CertSerial)
	mem.CertSerial = iss.Serial
	return true, putMember(tx, rec.ID, i, mem)
}

// revokeMember revokes every certificate a server holds in a lease: the
// current one and those it renewed.
func revokeMember(tx store.Tx, mem member, at time.Time) error {
	for _, s := range append([]string{mem.CertSerial}, mem.Earlier...) {
		if s == "" {
			continue
		}
		if err := revoke(tx, s, at); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// handleCert answers a lent server the newest certificate of its key: the
// renewed one after an extension. The presented certificate must be
// known and unrevoked.
func (m *Manager) handleCert(w http.ResponseWriter, r *http.Request) {
	leaf := clientCert(w, r, "needs the one-time client certificate")
	if leaf == nil {
		return
	}
	serial := leaf.SerialNumber.Text(16)
	var newest certRec
	err := m.st.View(r.Context(), func(tx store.Tx) error {
		var c certRec
		if err := tx.Get(store.Certs, serial, &c); err != nil || !c.Revoked.IsZero() {
			return &api.FieldError{Field: "certificate", Reason: fmt.Sprintf("serial %s is unknown or revoked", serial)}
		}
		mem, err := getMember(tx, c.LeaseID, c.Index)
		if err != nil {
			return err
		}
		if err := tx.Get(store.Certs, mem.CertSerial, &newest); err != nil || !newest.Revoked.IsZero() ||
			newest.SPKIPin != c.SPKIPin || len(newest.DER) == 0 {
			return &api.FieldError{Field: "certificate", Reason: fmt.Sprintf("no live certificate of this key for %s", mem.ID)}
		}
		return nil
	})
	if err != nil {
		api.WriteError(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, api.CertResponse{
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: newest.DER})), NotAfter: newest.NotAfter})
}

package lender

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"ferry/api"
	"ferry/lenderca"
	"ferry/store"
)

// Enrollment refusal reasons, also the label of the failure metric.
const (
	reasonUnknown = "unknown"
	reasonUsed    = "used"
	reasonExpired = "expired"
	reasonMAC     = "mac"
	reasonCSR     = "csr"
	reasonLease   = "lease"
)

// EnrollError is a refused enrollment: the field and why.
type EnrollError struct {
	api.FieldError
	Kind string
}

// Unwrap lets errors.As find the field refusal.
func (e *EnrollError) Unwrap() error { return &e.FieldError }

func refuse(kind, field, format string, a ...any) error {
	return &EnrollError{Kind: kind, FieldError: api.FieldError{Field: field, Reason: fmt.Sprintf(format, a...)}}
}

// Enroll checks a one-time token against its MAC and lease, checks the
// CSR against what the lease allows, signs the certificate and consumes
// the token in the transaction that records the certificate.
func (m *Manager) Enroll(ctx context.Context, req api.EnrollRequest) (api.EnrollResponse, error) {
	resp, err := m.enroll(ctx, req)
	if err != nil {
		var ee *EnrollError
		kind := "other"
		if errors.As(err, &ee) {
			kind = ee.Kind
		}
		m.metrics.enrollFail(kind)
		m.log.Warn("enrollment refused", "mac", req.MAC, "err", err)
		return resp, err
	}
	m.metrics.enrolled.Add(1)
	m.log.Info("server enrolled", "lease", resp.LeaseID, "server", resp.ServerID, "mac", req.MAC)
	return resp, nil
}

func (m *Manager) enroll(ctx context.Context, req api.EnrollRequest) (api.EnrollResponse, error) {
	mac, _ := api.NormalizeMAC(req.MAC)
	hash := lenderca.HashToken(req.Token)
	now := m.now().UTC()
	var tok tokenRec
	var rec leaseRec
	var mem member
	err := m.st.View(ctx, func(tx store.Tx) error {
		if err := tx.Get(store.Tokens, hash, &tok); err != nil {
			return refuse(reasonUnknown, "token", "not issued by this lender (forged, mistyped, or superseded by a later boot)")
		}
		if err := checkToken(tok, mac, now); err != nil {
			return err
		}
		if err := tx.Get(store.Leases, tok.LeaseID, &rec); err != nil || rec.State != api.LeaseActive {
			return refuse(reasonLease, "token", "lease %s is not active", tok.LeaseID)
		}
		var err error
		mem, err = getMember(tx, tok.LeaseID, tok.Index)
		return err
	})
	if err != nil {
		return api.EnrollResponse{}, err
	}
	subj := lenderca.Subject{LeaseID: tok.LeaseID, ServerID: tok.ServerID}
	csr, err := lenderca.CheckCSR([]byte(req.CSR), subj)
	if err != nil {
		var fe *api.FieldError
		if errors.As(err, &fe) {
			return api.EnrollResponse{}, refuse(reasonCSR, fe.Field, "%s", fe.Reason)
		}
		return api.EnrollResponse{}, refuse(reasonCSR, "csr_pem", "%v", err)
	}
	iss, err := m.ca.Sign(csr, subj, now, rec.Expires)
	if err != nil {
		return api.EnrollResponse{}, err
	}
	if err := m.st.Batch(ctx, func(tx store.Tx) error { return consume(tx, hash, mac, now, iss, rec.Expires) }); err != nil {
		return api.EnrollResponse{}, err
	}
	m.mu.Lock()
	delete(m.boots, mac)
	m.mu.Unlock()
	return m.enrollResponse(rec, mem, iss), nil
}

func checkToken(tok tokenRec, mac string, now time.Time) error {
	switch {
	case !tok.Used.IsZero():
		return refuse(reasonUsed, "token", "already used at %s", tok.Used.Format(time.RFC3339))
	case now.After(tok.Expires):
		return refuse(reasonExpired, "token", "expired at %s", tok.Expires.Format(time.RFC3339))
	case tok.MAC != mac:
		return refuse(reasonMAC, "mac", "%s, but the token is bound to %s", mac, tok.MAC)
	}
	return nil
}

// consume re-checks the token inside the write transaction (a concurrent
// enrollment may have used it), marks it used and records the certificate
// on the lease.
func consume(tx store.Tx, hash, mac string, now time.Time, iss lenderca.Issued, notAfter time.Time) error {
	var tok tokenRec
	if err := tx.Get(store.Tokens, hash, &tok); err != nil {
		return refuse(reasonUnknown, "token", "withdrawn while enrolling")
	}
	if err := checkToken(tok, mac, now); err != nil {
		return err
	}
	var rec leaseRec
	if err := tx.Get(store.Leases, tok.LeaseID, &rec); err != nil {
		return err
	}
	mem, err := getMember(tx, tok.LeaseID, tok.Index)
	if rec.State != api.LeaseActive || err != nil {
		return refuse(reasonLease, "token", "lease %s ended while enrolling", tok.LeaseID)
	}
	if mem.CertSerial != "" {
		return refuse(reasonUsed, "token", "server %s already enrolled in lease %s (certificate %s)", mem.ID, rec.ID, mem.CertSerial)
	}
	tok.Used = now
	mem.SPKIPin, mem.CertSerial, mem.Phase = iss.SPKIPin, iss.Serial, PhaseEnrolled
	mem.Tokens = slices.DeleteFunc(mem.Tokens, func(h string) bool { return h == hash })
	if err := tx.Put(store.Tokens, hash, tok); err != nil {
		return err
	}
	c := certRec{LeaseID: tok.LeaseID, ServerID: tok.ServerID, Index: tok.Index, SPKIPin: iss.SPKIPin, NotAfter: notAfter}
	if err := tx.Put(store.Certs, iss.Serial, c); err != nil {
		return err
	}
	return putMember(tx, tok.LeaseID, tok.Index, mem)
}

func (m *Manager) enrollResponse(rec leaseRec, mem member, iss lenderca.Issued) api.EnrollResponse {
	root := mem.Root
	return api.EnrollResponse{
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.DER})),
		CA:          m.ca.PEM(),
		LeaseID:     rec.ID, ServerID: mem.ID,
		Gateway: rec.Request.Gateway, BorrowerCA: rec.Request.BorrowerCA,
		Image: rec.Request.Image, Root: root, NotAfter: rec.Expires,
	}
}

// certSubject reads the lease and server a client certificate names.
func certSubject(c *x509.Certificate) (lenderca.Subject, error) {
	for _, u := range c.URIs {
		if s, ok := lenderca.ParseURI(u); ok {
			return s, nil
		}
	}
	return lenderca.Subject{}, fmt.Errorf("client certificate %q names no ferry:lease URI", c.Subject.CommonName)
}

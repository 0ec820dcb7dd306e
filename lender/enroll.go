package lender

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"ferry/api"
	"ferry/lenderca"
	"ferry/store"
)

// Enrollment refusal reasons, also the label of the failure metric.
const (
	reasonUnknown  = "unknown"
	reasonUsed     = "used"
	reasonExpired  = "expired"
	reasonMAC      = "mac"
	reasonCSR      = "csr"
	reasonLease    = "lease"
	reasonUnbound  = "unbound"
	reasonConflict = "conflict"
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

// Enroll checks a one-time token against its MAC, its lease and the
// binding of its boot (the source address from must be the one the
// lender observed for this boot), checks the CSR against what the lease
// allows, signs the certificate and consumes the token in the
// transaction that records the certificate. The same request again (same
// token, key and address) gets the same certificate: image A retries
// when an answer is lost. Another key, or another address, for a boot is
// a conflict.
func (m *Manager) Enroll(ctx context.Context, from netip.Addr, req api.EnrollRequest) (api.EnrollResponse, error) {
	resp, err := m.enroll(ctx, Observed{MAC: req.MAC, Addr: from.Unmap()}, req)
	if err != nil {
		var ee *EnrollError
		kind := "other"
		if errors.As(err, &ee) {
			kind = ee.Kind
		}
		m.metrics.enrollFail(kind)
		m.log.Warn("enrollment refused", "mac", req.MAC, "from", from, "err", err)
		return resp, err
	}
	m.metrics.enrolled.Add(1)
	m.log.Info("server enrolled", "lease", resp.LeaseID, "server", resp.ServerID, "mac", req.MAC, "from", from)
	return resp, nil
}

// enrollCheck is what the checks of one enrollment found: nothing to
// refuse, a replay of the enrollment that consumed the token, or a
// conflict to record.
type enrollCheck struct {
	tok    tokenRec
	rec    leaseRec
	mem    member
	replay *certRec // the token enrolled already, with this key from this address
	kind   string   // conflict kind, "" for none
	reason string
}

// checkEnroll runs every check of an enrollment inside tx. pin is the
// CSR's key ("" before the CSR is parsed).
func (m *Manager) checkEnroll(tx store.Tx, hash string, o Observed, pin string, now time.Time) (enrollCheck, error) {
	var c enrollCheck
	unknown := refuse(reasonUnknown, "token", "not issued by this lender (forged, mistyped, or superseded by a later boot)")
	if err := tx.Get(store.Tokens, hash, &c.tok); err != nil {
		return c, unknown
	}
	tok := &c.tok
	if tok.MAC != o.MAC {
		return c, refuse(reasonMAC, "mac", "%s, but the token is bound to %s", o.MAC, tok.MAC)
	}
	if err := tx.Get(store.Leases, tok.LeaseID, &c.rec); err != nil || c.rec.State != api.LeaseActive {
		return c, refuse(reasonLease, "token", "lease %s is not active", tok.LeaseID)
	}
	var err error
	if c.mem, err = getMember(tx, tok.LeaseID, tok.Index); err != nil {
		return c, refuse(reasonLease, "token", "server %s is not in lease %s", tok.ServerID, tok.LeaseID)
	}
	if hash != c.mem.Boot && !slices.Contains(c.mem.Tokens, hash) {
		return c, unknown // a token of an earlier boot
	}
	if c.mem.Phase == PhaseConflict {
		return c, conflictError(c.mem.Conflict)
	}
	if tok.Used.IsZero() && now.After(tok.Expires) {
		return c, refuse(reasonExpired, "token", "expired at %s", tok.Expires.Format(time.RFC3339))
	}
	switch {
	case tok.Binding != nil:
		if why := tok.Binding.match(o); why != "" {
			c.kind, c.reason = conflictEnrollAddr, why
			return c, nil
		}
	case m.netboot:
		return c, refuse(reasonUnbound, "token", "this boot's script was never fetched through the lender's netboot: nothing binds the token to a machine")
	}
	if !tok.Used.IsZero() {
		var cert certRec
		if c.mem.CertSerial != "" && tx.Get(store.Certs, c.mem.CertSerial, &cert) == nil && pin != "" &&
			cert.SPKIPin == pin && cert.Revoked.IsZero() && len(cert.DER) > 0 {
			c.replay = &cert
			return c, nil
		}
		if pin == "" {
			return c, nil // decided once the CSR is read
		}
		c.kind, c.reason = conflictSecondEnrol, fmt.Sprintf("second enrollment in one boot of %s from %s: token already used at %s by another key",
			o.MAC, o.Addr, tok.Used.Format(time.RFC3339))
		return c, nil
	}
	if c.mem.CertSerial != "" {
		c.kind, c.reason = conflictSecondEnrol, fmt.Sprintf("second enrollment of %s from %s: server already enrolled in lease %s (certificate %s)",
			o.MAC, o.Addr, c.rec.ID, c.mem.CertSerial)
	}
	return c, nil
}

func (m *Manager) enroll(ctx context.Context, o Observed, req api.EnrollRequest) (api.EnrollResponse, error) {
	o.MAC, _ = api.NormalizeMAC(req.MAC)
	hash := lenderca.HashToken(req.Token)
	now := m.now().UTC()
	var c enrollCheck
	err := m.st.View(ctx, func(tx store.Tx) (err error) {
		c, err = m.checkEnroll(tx, hash, o, "", now)
		return err
	})
	if err != nil {
		return api.EnrollResponse{}, err
	}
	pin := ""
	var iss lenderca.Issued
	if c.kind == "" {
		subj := lenderca.Subject{LeaseID: c.tok.LeaseID, ServerID: c.tok.ServerID}
		csr, err := lenderca.CheckCSR([]byte(req.CSR), subj)
		if err != nil {
			var fe *api.FieldError
			if errors.As(err, &fe) {
				return api.EnrollResponse{}, refuse(reasonCSR, fe.Field, "%s", fe.Reason)
			}
			return api.EnrollResponse{}, refuse(reasonCSR, "csr_pem", "%v", err)
		}
		pin = lenderca.SPKIPin(csr.RawSubjectPublicKeyInfo)
		if c.tok.Used.IsZero() {
			if iss, err = m.ca.Sign(csr, subj, now, c.rec.Expires); err != nil {
				return api.EnrollResponse{}, err
			}
		}
	}
	// Checked again where it counts: a concurrent enrollment may have
	// used the token, with this key (a retry: replay) or another.
	var out enrollCheck
	err = m.st.Batch(ctx, func(tx store.Tx) error {
		var err error
		out, err = m.checkEnroll(tx, hash, o, pin, now)
		switch {
		case err != nil || out.replay != nil:
			return err
		case out.kind != "":
			return markConflict(tx, out.tok.LeaseID, out.tok.Index, out.reason, now)
		case iss.DER == nil:
			return refuse(reasonUsed, "token", "already used at %s", out.tok.Used.Format(time.RFC3339))
		}
		return consume(tx, hash, o, now, iss, out.rec.Expires)
	})
	if err != nil {
		return api.EnrollResponse{}, err
	}
	switch {
	case out.kind != "":
		m.conflicted(Boot{MAC: o.MAC, LeaseID: out.tok.LeaseID, ServerID: out.tok.ServerID}, out.kind, out.reason)
		return api.EnrollResponse{}, conflictError(out.reason)
	case out.replay != nil:
		m.log.Info("enrollment repeated: same key from the bound address, same certificate", "mac", o.MAC, "serial", out.mem.CertSerial)
		iss = lenderca.Issued{DER: out.replay.DER, Serial: out.mem.CertSerial, SPKIPin: out.replay.SPKIPin}
	}
	m.mu.Lock()
	if b, ok := m.boots[o.MAC]; ok && b.LeaseID == out.tok.LeaseID {
		b.State, b.Token, b.KernelParam, b.hash = bootEnrolled, "", "", hash
		m.boots[o.MAC] = b
	}
	m.mu.Unlock()
	return m.enrollResponse(out.rec, out.mem, iss), nil
}

// consume marks the checked token used, binds it to o if nothing bound
// it before (no netboot) and records the certificate on the lease.
func consume(tx store.Tx, hash string, o Observed, now time.Time, iss lenderca.Issued, notAfter time.Time) error {
	var tok tokenRec
	if err := tx.Get(store.Tokens, hash, &tok); err != nil {
		return err
	}
	mem, err := getMember(tx, tok.LeaseID, tok.Index)
	if err != nil {
		return err
	}
	tok.Used = now
	if tok.Binding == nil {
		tok.Binding = &Binding{MAC: o.MAC, Addr: o.Addr.String(), Via: ViaEnroll, At: now}
	}
	was := mem.Phase
	mem.SPKIPin, mem.CertSerial, mem.Phase, mem.Error = iss.SPKIPin, iss.Serial, PhaseEnrolled, ""
	if err := recordServerEvent(tx, Event{At: now, Kind: EventState, MAC: mem.MAC, Lease: tok.LeaseID, Source: "agent",
		What: fmt.Sprintf("%s -> enrolled from %s, key %s, certificate %s", was, o.Addr, iss.SPKIPin, iss.Serial)}); err != nil {
		return err
	}
	mem.Boot = hash // the token that enrolled is the boot's (after a restart it may be an earlier one)
	mem.Certificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.DER}))
	mem.Tokens = slices.DeleteFunc(mem.Tokens, func(h string) bool { return h == hash })
	if err := tx.Put(store.Tokens, hash, tok); err != nil {
		return err
	}
	c := certRec{LeaseID: tok.LeaseID, ServerID: tok.ServerID, Index: tok.Index, SPKIPin: iss.SPKIPin, NotAfter: notAfter, DER: iss.DER}
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
		Image: rec.Request.Image, Root: root, NotAfter: rec.Expires, Tunnel: rec.Request.Tunnel,
		TunnelPool: rec.Request.TunnelPool,
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

package keeper

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"ferry/api"
	"ferry/pki"
)

// Lease extension: the lender renews the one-time certificate (same key,
// new validity) when the borrower lengthens the lease, and the keeper
// fetches it from the lender's agent API (GET api.PathCert, authenticated
// with the certificate it holds) before its own one expires. The request
// goes over the lender network, where the NIC is: it is the lender's
// traffic, not the borrower's, and needs no tunnel. A renewed certificate
// is swapped into the IKE initiator for the next IKE_AUTH (a reconnect)
// and into the shutdown listener's TLS; the live tunnel is never touched.

// Renewal tells the keeper where to renew its certificate: the lender's
// URL and the SHA-256 pin of the lender CA (ferry.ca=), both carried from
// image A in B's appended state. Empty LenderURL: no renewal (lab mode).
type Renewal struct {
	LenderURL string
	Pin       string
	// Every is how often the keeper asks while the certificate is far
	// from its end, so that an extension is picked up early: 1 h.
	Every time.Duration
	// RetryMin and RetryMax bound the back-off after a failed attempt
	// (or an unchanged certificate within the margin): 30 s and 15 min.
	RetryMin, RetryMax time.Duration
	// Now is the clock; nil is time.Now (tests move it).
	Now func() time.Time
}

// Renewal defaults.
const (
	renewEvery    = time.Hour
	renewRetryMin = 30 * time.Second
	renewRetryMax = 15 * time.Minute
	renewMinAhead = time.Hour
	renewTimeout  = 30 * time.Second
)

// CertStatus is the certificate part of GET /status.
type CertStatus struct {
	Serial   string `json:"serial"`
	NotAfter string `json:"not_after"`
	// LastRenewal is when the keeper last asked the lender;
	// LastRenewalResult is "renewed", "unchanged" or why it failed.
	LastRenewal       string `json:"last_renewal,omitempty"`
	LastRenewalResult string `json:"last_renewal_result,omitempty"`
	NextRenewal       string `json:"next_renewal,omitempty"`
	Renewals          int    `json:"renewals"`
}

// renewer holds the keeper's current one-time certificate and renews it.
type renewer struct {
	cfg    Renewal
	key    crypto.Signer
	client *http.Client
	base   string
	log    *slog.Logger
	// install puts a renewed chain into use (IKE initiator, TLS server).
	install func([]*x509.Certificate) error

	mu       sync.Mutex
	chain    []*x509.Certificate
	lenderCA *x509.Certificate // the pinned CA, as the lender's TLS sent it
	status   CertStatus
}

// newRenewer checks cfg and makes a renewer for chain (leaf first) and
// key. install is called with every accepted renewed chain.
func newRenewer(cfg Renewal, chain []*x509.Certificate, key crypto.Signer, install func([]*x509.Certificate) error, log *slog.Logger) (*renewer, error) {
	u, err := url.Parse(cfg.LenderURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("keeper: lender URL %q: want https://HOST[:PORT]", cfg.LenderURL)
	}
	if len(cfg.Pin) != 64 {
		return nil, fmt.Errorf("keeper: lender CA pin %q: want 64 hex digits (SHA-256)", cfg.Pin)
	}
	if len(chain) == 0 || key == nil {
		return nil, errors.New("keeper: certificate renewal: no certificate or key")
	}
	if cfg.Every <= 0 {
		cfg.Every = renewEvery
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = renewRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(renewRetryMax, cfg.RetryMin)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &renewer{cfg: cfg, key: key, base: cfg.LenderURL, log: log, install: install, chain: chain}
	r.status.Serial, r.status.NotAfter = chain[0].SerialNumber.Text(16), chain[0].NotAfter.UTC().Format(time.RFC3339)
	tc := api.PinnedClientTLS(cfg.Pin, u.Hostname(), nil)
	pinned := tc.VerifyPeerCertificate
	tc.VerifyPeerCertificate = func(raw [][]byte, v [][]*x509.Certificate) error {
		if err := pinned(raw, v); err != nil {
			return err
		}
		return r.notePinnedCA(raw)
	}
	// Whichever certificate is current authenticates us; the lender takes
	// any live one of our key.
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c := r.current()
		return &tls.Certificate{Certificate: [][]byte{c[0].Raw}, PrivateKey: r.key, Leaf: c[0]}, nil
	}
	// One request an hour: a fresh handshake each time, so the current
	// certificate is the one presented.
	r.client = &http.Client{Timeout: renewTimeout,
		Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true, TLSHandshakeTimeout: 10 * time.Second,
			ResponseHeaderTimeout: renewTimeout, MaxResponseHeaderBytes: 16 << 10}}
	return r, nil
}

// notePinnedCA keeps the CA certificate of the lender's chain that has
// the pin: renewed certificates must be signed by it.
func (r *renewer) notePinnedCA(raw [][]byte) error {
	for _, der := range raw[1:] {
		if api.Fingerprint(der) != r.cfg.Pin {
			continue
		}
		ca, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.lenderCA = ca
		r.mu.Unlock()
		return nil
	}
	return errors.New("pinned CA not in the lender's chain")
}

func (r *renewer) current() []*x509.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.chain
}

// Status is the certificate part of GET /status.
func (r *renewer) Status() CertStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// renewMargin is how long before a certificate's end the keeper wants
// its successor: 10 % of its validity, at least an hour.
func renewMargin(c *x509.Certificate) time.Duration {
	return max(renewMinAhead, c.NotAfter.Sub(c.NotBefore)/10)
}

// run renews until ctx ends: every cfg.Every, and from the margin before
// the current certificate's end on, with back-off while the lender fails
// or has nothing newer. Nothing it does touches the tunnel.
func (r *renewer) run(ctx context.Context) {
	retry := time.Duration(0)
	for {
		next := r.cfg.Now().Add(r.cfg.Every)
		renewed, err := r.once(ctx)
		now := r.cfg.Now()
		leaf := r.current()[0]
		due := leaf.NotAfter.Add(-renewMargin(leaf))
		switch {
		case err != nil || (!renewed && !now.Before(due)):
			// Failed, or the lease was not extended yet: ask again soon,
			// backing off, until the lender answers with a newer one.
			retry = min(max(2*retry, r.cfg.RetryMin), r.cfg.RetryMax)
			next = now.Add(retry)
		default:
			retry = 0
			if due.Before(next) {
				next = due
			}
		}
		r.mu.Lock()
		r.status.NextRenewal = next.UTC().Format(time.RFC3339)
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(next.Sub(now), time.Second)):
		}
	}
}

// once asks the lender for the newest certificate of our key and, when it
// is newer and passes the checks, puts it into use. It reports whether
// the certificate changed.
func (r *renewer) once(ctx context.Context) (bool, error) {
	renewed, err := r.fetch(ctx)
	result := "unchanged"
	switch {
	case err != nil:
		result = oneLine(err.Error())
		r.log.Warn("certificate renewal failed; the current one stays in use", "err", err)
	case renewed != nil:
		result = "renewed"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.LastRenewal, r.status.LastRenewalResult = r.cfg.Now().UTC().Format(time.RFC3339), result
	if renewed != nil {
		r.chain = []*x509.Certificate{renewed}
		r.status.Renewals++
		r.status.Serial, r.status.NotAfter = renewed.SerialNumber.Text(16), renewed.NotAfter.UTC().Format(time.RFC3339)
	}
	return renewed != nil, err
}

// fetch gets, checks and installs a renewed certificate; nil when the
// lender's newest is the one we hold.
func (r *renewer) fetch(ctx context.Context) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, renewTimeout)
	defer cancel()
	var cr api.CertResponse
	c := &api.Client{HTTP: r.client, Base: r.base}
	if err := c.Call(ctx, http.MethodGet, api.PathCert, nil, &cr); err != nil {
		return nil, fmt.Errorf("renew certificate at the lender: %w", err)
	}
	certs, err := pki.ParseCertsPEM([]byte(cr.Certificate))
	if err != nil {
		return nil, fmt.Errorf("renew certificate: lender's certificate_pem: %w", err)
	}
	r.mu.Lock()
	cur, ca := r.chain[0], r.lenderCA
	r.mu.Unlock()
	if certs[0].Equal(cur) {
		return nil, nil
	}
	if err := checkRenewed(cur, certs[0], ca, r.key, r.cfg.Now()); err != nil {
		return nil, err
	}
	if err := r.install([]*x509.Certificate{certs[0]}); err != nil {
		return nil, fmt.Errorf("renew certificate: %w", err)
	}
	r.log.Info("certificate renewed", "serial", certs[0].SerialNumber.Text(16), "not_after", certs[0].NotAfter.UTC().Format(time.RFC3339),
		"previous_not_after", cur.NotAfter.UTC().Format(time.RFC3339))
	return certs[0], nil
}

// checkRenewed accepts next as the successor of cur only if it is for
// our key, signed by the pinned lender CA (the one that signed cur), for
// the same subject, valid now, and ends later than cur: the lender is
// trusted to renew, not to hand us anyone else's identity or a shorter
// one.
func checkRenewed(cur, next, lenderCA *x509.Certificate, key crypto.Signer, now time.Time) error {
	name := fmt.Sprintf("renewed certificate (serial %s)", next.SerialNumber.Text(16))
	own, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("%s: our key: %w", name, err)
	}
	if !bytes.Equal(own, next.RawSubjectPublicKeyInfo) {
		return fmt.Errorf("%s: for another key, refused", name)
	}
	if lenderCA == nil {
		return fmt.Errorf("%s: no pinned lender CA to check it with", name)
	}
	if err := cur.CheckSignatureFrom(lenderCA); err != nil {
		return fmt.Errorf("%s: the pinned lender CA did not sign our current certificate: %w", name, err)
	}
	if err := next.CheckSignatureFrom(lenderCA); err != nil {
		return fmt.Errorf("%s: not signed by the pinned lender CA %q, refused: %w", name, lenderCA.Subject, err)
	}
	if !bytes.Equal(next.RawSubject, cur.RawSubject) || !bytes.Equal(next.RawIssuer, cur.RawIssuer) {
		return fmt.Errorf("%s: subject %q issuer %q, want %q from %q", name, next.Subject, next.Issuer, cur.Subject, cur.Issuer)
	}
	if !next.NotAfter.After(cur.NotAfter) {
		return fmt.Errorf("%s: ends %s, not after the current one's %s", name,
			next.NotAfter.UTC().Format(time.RFC3339), cur.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(next.NotBefore.Add(-5*time.Minute)) || now.After(next.NotAfter) {
		return fmt.Errorf("%s: valid %s to %s, not now", name,
			next.NotBefore.UTC().Format(time.RFC3339), next.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

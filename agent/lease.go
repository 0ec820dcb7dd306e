package agent

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"ferry/api"
	"ferry/ipsec/ike"
	"ferry/pki"
)

// Lease is what a managed boot (ferry.lender= on A's command line) learns
// at enrollment and carries into B: where to report, which lease and
// server it is, and the gateway. The credentials travel beside it in the
// tunnel state directory (TunnelDir).
type Lease struct {
	LenderURL string `json:"lender_url"`
	CAPin     string `json:"ca_sha256"`
	LeaseID   string `json:"lease_id"`
	ServerID  string `json:"server_id"`
	Gateway   string `json:"gateway"`
}

// enrolled is a checked enrollment answer.
type enrolled struct {
	cert       *x509.Certificate
	lenderCA   []*x509.Certificate
	borrowerCA []*x509.Certificate
	gateway    netip.Addr
	settings   *Settings
	timers     ike.Timers
	pool       netip.Prefix // the lease's tunnel_pool; zero when the lender sent none
}

// checkEnrollment validates the lender's answer: it comes from the
// network, so every field the agent uses is checked and named when wrong.
// want is the lease/server the CSR asked for.
func checkEnrollment(r *api.EnrollResponse, leaseID, serverID string) (*enrolled, error) {
	if r.LeaseID != leaseID || r.ServerID != serverID {
		return nil, fmt.Errorf("enrollment answer: lease_id/server_id %q/%q, asked for %q/%q", r.LeaseID, r.ServerID, leaseID, serverID)
	}
	var e enrolled
	certs, err := pki.ParseCertsPEM([]byte(r.Certificate))
	if err != nil {
		return nil, fmt.Errorf("enrollment answer: certificate_pem: %w", err)
	}
	e.cert = certs[0]
	if e.lenderCA, err = pki.ParseCertsPEM([]byte(r.CA)); err != nil {
		return nil, fmt.Errorf("enrollment answer: ca_pem: %w", err)
	}
	if e.borrowerCA, err = pki.ParseCertsPEM([]byte(r.BorrowerCA)); err != nil {
		return nil, fmt.Errorf("enrollment answer: borrower_ca_pem: %w", err)
	}
	if e.gateway, err = gatewayAddr(r.Gateway); err != nil {
		return nil, fmt.Errorf("enrollment answer: gateway %q: %w", r.Gateway, err)
	}
	s := &Settings{
		Kernel:  Artifact(r.Image.Kernel),
		Initrd:  Artifact(r.Image.Initrd),
		Cmdline: r.Image.Cmdline,
		Root: Root{Server: r.Root.Server, Path: r.Root.Path, NFSVersion: r.Root.NFSVersion,
			Options: r.Root.Options, Init: r.Root.Init, State: r.Root.State},
	}
	if m := r.Image.Modules; m != nil {
		s.Modules = &Artifact{URL: m.URL, SHA256: m.SHA256}
	}
	s.defaults()
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("enrollment answer: %w", err)
	}
	urls := map[string]string{"image.kernel.url": s.Kernel.URL, "image.initrd.url": s.Initrd.URL}
	if s.Modules != nil {
		urls["image.modules.url"] = s.Modules.URL
	}
	for field, a := range urls {
		u, err := url.Parse(a)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("enrollment answer: %s %q: want an absolute https URL (image B comes from the borrower, through the tunnel)", field, a)
		}
	}
	if r.Tunnel != nil {
		e.timers = ike.Timers(*r.Tunnel)
		if err := e.timers.Apply(&ike.Config{}); err != nil {
			return nil, fmt.Errorf("enrollment answer: tunnel: %w", err)
		}
	}
	if r.TunnelPool != "" {
		if e.pool, err = api.ParseTunnelPool(r.TunnelPool); err != nil {
			return nil, fmt.Errorf("enrollment answer: tunnel_pool: %w", err)
		}
		if err := api.CheckTunnelPool(e.pool, api.PathAddr{Name: "the gateway", Addr: e.gateway}); err != nil {
			return nil, fmt.Errorf("enrollment answer: tunnel_pool: %w", err)
		}
	}
	e.settings = s
	return &e, nil
}

// gatewayAddr reads "ADDR" or "ADDR:500": IKE runs on the standard ports.
func gatewayAddr(s string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() != 500 {
			return netip.Addr{}, fmt.Errorf("port %d: IKE runs on 500 (and 4500)", ap.Port())
		}
		return ap.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("not an IP address (an initramfs has no resolver)")
	}
	return a.Unmap(), nil
}

// subjectFromTrace splits ferry.trace=LEASE-SERVER, the lender's trace id,
// into the lease and server the one-time certificate must name (the CSR's
// CN is LEASE/SERVER). Lender ids are [A-Za-z0-9] only.
func subjectFromTrace(trace string) (leaseID, serverID string, err error) {
	l, s, ok := strings.Cut(trace, "-")
	if !ok || !idLike(l) || !idLike(s) {
		return "", "", fmt.Errorf("ferry.trace=%q: want LEASE-SERVER as the lender's iPXE script sets it", trace)
	}
	return l, s, nil
}

func idLike(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

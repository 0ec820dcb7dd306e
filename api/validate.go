package api

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"unicode"
)

// Bounds of individual fields.
const (
	maxKey     = 128
	maxURL     = 2048
	maxCmdline = 4096
	maxPEM     = 64 << 10
	maxText    = 1024
	maxPhase   = 64
	// MaxDuration is the longest lease: 90 days.
	MaxDuration = 90 * 24 * 3600
)

// Validate checks every field of a lease request.
func (r *LeaseRequest) Validate() error {
	if err := checkToken("idempotency_key", r.IdempotencyKey, 8, maxKey); err != nil {
		return err
	}
	if r.Count < 1 || r.Count > MaxServers {
		return fieldf("count", "%d is not between 1 and %d", r.Count, MaxServers)
	}
	if r.Pool != "" {
		if err := checkToken("pool", r.Pool, 1, 64); err != nil {
			return err
		}
	}
	if err := checkHostPort("gateway", r.Gateway); err != nil {
		return err
	}
	if err := checkPEM("borrower_ca_pem", r.BorrowerCA, "CERTIFICATE"); err != nil {
		return err
	}
	if err := r.Image.validate("image"); err != nil {
		return err
	}
	if len(r.Roots) != r.Count {
		return fieldf("roots", "%d roots for %d servers: want one per server", len(r.Roots), r.Count)
	}
	for i := range r.Roots {
		if err := r.Roots[i].validate(fmt.Sprintf("roots[%d]", i)); err != nil {
			return err
		}
	}
	if r.DurationSeconds < 60 || r.DurationSeconds > MaxDuration {
		return fieldf("duration_seconds", "%d is not between 60 and %d", r.DurationSeconds, MaxDuration)
	}
	if r.Tunnel != nil {
		if err := r.Tunnel.Validate("tunnel"); err != nil {
			return err
		}
	}
	if r.TunnelPool != "" {
		pool, err := ParseTunnelPool(r.TunnelPool)
		if err != nil {
			return fieldf("tunnel_pool", "%v", err)
		}
		if err := CheckTunnelPool(pool, PathAddr{Name: "the gateway", Addr: hostAddr(r.Gateway)}); err != nil {
			return fieldf("tunnel_pool", "%v", err)
		}
	}
	return nil
}

// hostAddr is the address of "ADDR" or "ADDR:PORT" (checkHostPort's
// syntax); the zero Addr if it is neither.
func hostAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr()
	}
	a, _ := netip.ParseAddr(s)
	return a
}

// maxTimer bounds each tunnel timer: a year.
const maxTimer = 366 * 24 * 3600

// Validate checks the timers' bounds and that twice the rekey margin is
// under both lifetimes (the defaults' where a field is zero, as
// ipsec/ike.Timers.Apply fills them).
func (t *TunnelTimers) Validate(f string) error {
	for _, v := range []struct {
		name string
		v    int
	}{{"dpd_seconds", t.DPDSeconds}, {"ike_lifetime_seconds", t.IKELifetimeSeconds},
		{"child_lifetime_seconds", t.ChildLifetimeSeconds}, {"rekey_margin_seconds", t.RekeyMarginSeconds}} {
		if v.v < 0 || v.v > maxTimer {
			return fieldf(f+"."+v.name, "%d is not between 0 (default) and %d", v.v, maxTimer)
		}
	}
	or := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	m := or(t.RekeyMarginSeconds, 360)
	for _, l := range []struct {
		name string
		v    int
	}{{"ike_lifetime_seconds", or(t.IKELifetimeSeconds, 4*3600)}, {"child_lifetime_seconds", or(t.ChildLifetimeSeconds, 3600)}} {
		if 2*m >= l.v {
			return fieldf(f+".rekey_margin_seconds", "twice %d is not under %s %d", m, l.name, l.v)
		}
	}
	return nil
}

func (im *Image) validate(f string) error {
	if err := im.Kernel.validate(f + ".kernel"); err != nil {
		return err
	}
	if err := im.Initrd.validate(f + ".initrd"); err != nil {
		return err
	}
	if im.Modules != nil {
		if err := im.Modules.validate(f + ".modules"); err != nil {
			return err
		}
	}
	return checkText(f+".cmdline", im.Cmdline, maxCmdline)
}

func (a *Artifact) validate(f string) error {
	if len(a.URL) > maxURL {
		return fieldf(f+".url", "%d bytes, over %d", len(a.URL), maxURL)
	}
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fieldf(f+".url", "%q is not an absolute http(s) URL", a.URL)
	}
	return CheckSHA256(f+".sha256", a.SHA256)
}

// CheckSHA256 refuses anything but 64 lower-case hex digits.
func CheckSHA256(field, s string) error {
	if len(s) != 64 || strings.ToLower(s) != s {
		return fieldf(field, "want 64 lower-case hex digits, got %d characters", len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fieldf(field, "not hex: %v", err)
	}
	return nil
}

func (n *NFSRoot) validate(f string) error {
	if net.ParseIP(n.Server) == nil {
		return fieldf(f+".server", "%q is not an IP address", n.Server)
	}
	if !strings.HasPrefix(n.Path, "/") || strings.Contains(n.Path, "..") || len(n.Path) > maxText {
		return fieldf(f+".path", "%q is not an absolute export path without '..'", n.Path)
	}
	switch n.NFSVersion {
	case "", "3", "4", "4.0", "4.1", "4.2":
	default:
		return fieldf(f+".nfs_version", "%q is not 3, 4, 4.0, 4.1 or 4.2", n.NFSVersion)
	}
	switch n.State {
	case "", "tmpfs", "copy":
	default:
		return fieldf(f+".state", "%q is not tmpfs or copy", n.State)
	}
	if n.Init != "" && !strings.HasPrefix(n.Init, "/") {
		return fieldf(f+".init", "%q is not an absolute path", n.Init)
	}
	return checkText(f+".options", n.Options, maxText)
}

// Validate checks an enrollment request's shape; the token and CSR are
// checked against the store and the lease by the lender.
func (r *EnrollRequest) Validate() error {
	if err := checkToken("token", r.Token, 43, 64); err != nil {
		return err
	}
	if _, err := NormalizeMAC(r.MAC); err != nil {
		return fieldf("mac", "%v", err)
	}
	return checkPEM("csr_pem", r.CSR, "CERTIFICATE REQUEST")
}

// Validate checks a phase report.
func (p *PhaseReport) Validate() error {
	if err := checkToken("lease_id", p.LeaseID, 1, maxKey); err != nil {
		return err
	}
	if err := checkToken("server_id", p.ServerID, 1, maxKey); err != nil {
		return err
	}
	if err := checkToken("phase", p.Phase, 1, maxPhase); err != nil {
		return err
	}
	if p.Start.IsZero() || p.End.Before(p.Start) {
		return fieldf("end", "%s is before start %s", p.End, p.Start)
	}
	if p.Bytes < 0 {
		return fieldf("bytes", "%d is negative", p.Bytes)
	}
	return checkText("error", p.Error, maxText)
}

// NormalizeMAC parses a 6-byte Ethernet address and returns it lower-case,
// colon-separated.
func NormalizeMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%q is not a 6-byte MAC address", s)
	}
	return hw.String(), nil
}

// checkToken allows [A-Za-z0-9._-] of bounded length: ids, keys, names.
func checkToken(field, s string, minLen, maxLen int) error {
	if len(s) < minLen || len(s) > maxLen {
		return fieldf(field, "%d characters, want %d to %d", len(s), minLen, maxLen)
	}
	for i, c := range s {
		if !(c < unicode.MaxASCII && (unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("._-", c))) {
			return fieldf(field, "character %q at %d is not a letter, digit, '.', '_' or '-'", c, i)
		}
	}
	return nil
}

func checkText(field, s string, maxLen int) error {
	if len(s) > maxLen {
		return fieldf(field, "%d bytes, over %d", len(s), maxLen)
	}
	for i, c := range s {
		if c < 0x20 || c == 0x7f {
			return fieldf(field, "control character %#x at %d", c, i)
		}
	}
	return nil
}

func checkHostPort(field, s string) error {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	if net.ParseIP(host) == nil {
		return fieldf(field, "%q is not an IP address (optionally with :port)", s)
	}
	return nil
}

func checkPEM(field, s, typ string) error {
	if len(s) > maxPEM {
		return fieldf(field, "%d bytes, over %d", len(s), maxPEM)
	}
	if !strings.Contains(s, "-----BEGIN "+typ+"-----") {
		return fieldf(field, "no PEM block of type %s", typ)
	}
	return nil
}

// Validate refuses a zero end.
func (r *ExtendRequest) Validate() error {
	if r.Until.IsZero() {
		return fieldf("until", "empty: give the lease's new end (RFC 3339)")
	}
	return nil
}

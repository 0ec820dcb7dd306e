package lender

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"ferry/api"
	"ferry/netboot"
)

// pxeLab is a lender with one leased server and its real netboot server,
// driven packet by packet: DHCP through Answer, the script and the
// enrollment through the HTTP handlers with the source address set, as
// the listeners would see it.
type pxeLab struct {
	f     *fixture
	nb    *netboot.Server
	lease api.Lease
	mac   net.HardwareAddr
}

const attackerAddr = "10.57.0.66"

func newPXELab(t *testing.T, mode string) *pxeLab {
	t.Helper()
	f := newFixture(t, 1)
	d := t.TempDir()
	k, i := filepath.Join(d, "vmlinuz"), filepath.Join(d, "initrd.img")
	os.WriteFile(k, []byte("KERNEL"), 0o644)
	os.WriteFile(i, []byte("INITRD"), 0o644)
	c := NetbootConfig{Interface: "lo", ServerIP: "10.57.0.1", Mode: mode, PoolFirst: "10.57.0.100",
		PoolLast: "10.57.0.120", Prefix: "10.57.0.0/24", KernelA: k, InitrdA: i, Cmdline: "console=ttyS0"}
	nb, err := netbootServer(f.m, c)
	if err != nil {
		t.Fatal(err)
	}
	l, err := f.m.RequestLease(context.Background(), leaseReq("key-pxe-0001", 1))
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC(l.Servers[0].MAC)
	return &pxeLab{f: f, nb: nb, lease: l, mac: mac}
}

// ipxeDHCP is iPXE's DHCP with mac (DISCOVER, and REQUEST in dhcp mode):
// the address it got (zero in proxydhcp mode) and the script's path.
func (p *pxeLab) ipxeDHCP(t *testing.T, mac net.HardwareAddr) (string, string) {
	t.Helper()
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(mac),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)), dhcpv4.WithUserClass("iPXE", false)}
	d, _ := dhcpv4.New(mods...)
	r, err := p.nb.Answer(context.Background(), d)
	if err != nil {
		t.Fatalf("DISCOVER from %s: %v", mac, err)
	}
	if !r.YourIPAddr.IsUnspecified() {
		req, _ := dhcpv4.NewRequestFromOffer(r, dhcpv4.WithUserClass("iPXE", false),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")))
		if r, err = p.nb.Answer(context.Background(), req); err != nil || r.MessageType() != dhcpv4.MessageTypeAck {
			t.Fatalf("REQUEST from %s: %v %v", mac, r, err)
		}
	}
	u, err := url.Parse(r.BootFileNameOption())
	if err != nil || !strings.Contains(u.Path, "/ipxe/") {
		t.Fatalf("boot file %q: want the script URL", r.BootFileNameOption())
	}
	addr := ""
	if !r.YourIPAddr.IsUnspecified() {
		addr = r.YourIPAddr.String()
	}
	return addr, u.Path
}

// get fetches path from the netboot HTTP server as from would.
func (p *pxeLab) get(path, from string) (int, string) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr(from), 40000).String()
	p.nb.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

var tokenRE = regexp.MustCompile(`ferry\.token=(\S+)`)

// script fetches the script and returns this boot's token.
func (p *pxeLab) script(t *testing.T, path, from string) string {
	t.Helper()
	code, body := p.get(path, from)
	m := tokenRE.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("script from %s: %d %q, want the script with a token", from, code, body)
	}
	return m[1]
}

// enroll posts an enrollment to the agent API as from would.
func (p *pxeLab) enroll(t *testing.T, from, token, mac, csr string) (int, api.EnrollResponse, string) {
	t.Helper()
	body, _ := json.Marshal(api.EnrollRequest{Token: token, MAC: mac, CSR: csr})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, api.PathEnroll, strings.NewReader(string(body)))
	req.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr(from), 40001).String()
	p.f.m.AgentHandler().ServeHTTP(rec, req)
	var resp api.EnrollResponse
	if rec.Code == http.StatusOK {
		json.Unmarshal(rec.Body.Bytes(), &resp)
	}
	return rec.Code, resp, rec.Body.String()
}

func (p *pxeLab) csr(t *testing.T) string {
	_, csr := csrFor(t, p.lease.ID+"/"+p.lease.Servers[0].ID)
	return csr
}

func (p *pxeLab) server(t *testing.T) api.LeaseServer {
	t.Helper()
	l, err := p.f.m.Lease(context.Background(), p.lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	return l.Servers[0]
}

// wantConflict: the server is marked conflict with a reason naming words.
func (p *pxeLab) wantConflict(t *testing.T, words ...string) {
	t.Helper()
	s := p.server(t)
	if s.Phase != PhaseConflict {
		t.Fatalf("server phase %q, want %q", s.Phase, PhaseConflict)
	}
	for _, w := range words {
		if !strings.Contains(s.Conflict, w) {
			t.Errorf("conflict reason %q lacks %q", s.Conflict, w)
		}
	}
	if s.SPKIPin != "" {
		t.Errorf("server in conflict still shows key %s for the borrower to allow", s.SPKIPin)
	}
	// The operator sees it in the inventory, with the reason and in the
	// history.
	inv, err := p.f.m.Server(context.Background(), s.MAC)
	if err != nil || inv.State != PhaseConflict || inv.LastError != s.Conflict || s.Error != s.Conflict {
		t.Errorf("server view %+v (%v), want state conflict with last error %q", inv, err, s.Conflict)
	}
	ev, _ := p.f.m.ServerEvents(context.Background(), s.MAC)
	if n := len(ev); n == 0 || !strings.HasSuffix(ev[n-1].What, "-> conflict") || ev[n-1].Error != s.Conflict {
		t.Errorf("history does not end with the conflict: %+v", ev)
	}
}

func TestHonestPXEBootEnrollsFromItsDHCPAddress(t *testing.T) {
	for _, mode := range []string{"dhcp", "proxydhcp"} {
		t.Run(mode, func(t *testing.T) {
			p := newPXELab(t, mode)
			addr, path := p.ipxeDHCP(t, p.mac)
			if addr == "" {
				addr = "10.57.0.200" // the network's own DHCP server gave it
			}
			token := p.script(t, path, addr)
			code, resp, body := p.enroll(t, addr, token, p.mac.String(), p.csr(t))
			if code != http.StatusOK || resp.LeaseID != p.lease.ID {
				t.Fatalf("honest enrollment from %s: %d %s", addr, code, body)
			}
			if s := p.server(t); s.Phase != PhaseEnrolled || s.SPKIPin == "" {
				t.Fatalf("after the honest boot: phase %q pin %q, want enrolled with a key", s.Phase, s.SPKIPin)
			}
		})
	}
}

// An attacker asks DHCP with the victim's MAC and fetches the script
// from its own address: refused, and the server is in conflict.
func TestScriptFromAnotherAddressThanTheLeasedOneIsAConflict(t *testing.T) {
	p := newPXELab(t, "dhcp")
	addr, path := p.ipxeDHCP(t, p.mac)
	if code, body := p.get(path, attackerAddr); code == http.StatusOK {
		t.Fatalf("script fetched from %s (lease %s): %d %q, want refused", attackerAddr, addr, code, body)
	}
	p.wantConflict(t, attackerAddr, addr)
	// the real server, fetching from its own address, is refused too
	// until an operator clears the conflict
	if code, _ := p.get(path, addr); code == http.StatusOK {
		t.Fatal("script served to the real server while in conflict")
	}
}

// A second fetch of the script in one boot (the attacker's, even from
// the spoofed address) refuses both: the first token enrolls no more.
func TestSecondScriptFetchOfABootIsAConflict(t *testing.T) {
	p := newPXELab(t, "dhcp")
	addr, path := p.ipxeDHCP(t, p.mac)
	token := p.script(t, path, addr)
	_, path2 := p.ipxeDHCP(t, p.mac) // the attacker with the victim's MAC
	if code, body := p.get(path2, addr); code == http.StatusOK {
		t.Fatalf("second script of the boot served: %q", body)
	}
	p.wantConflict(t, "second")
	if code, _, body := p.enroll(t, addr, token, p.mac.String(), p.csr(t)); code == http.StatusOK {
		t.Fatal("enrolled with the first token after a conflict")
	} else if !strings.Contains(body, "conflict") {
		t.Errorf("refusal %q does not say conflict", body)
	}
	// the same URL again is refused as well
	if code, _ := p.get(path, addr); code == http.StatusOK {
		t.Fatal("script URL served twice")
	}
}

// The token enrolls only from the address the lender bound the boot to,
// whatever MAC the caller writes.
func TestEnrollFromAnotherAddressIsAConflict(t *testing.T) {
	for _, mode := range []string{"dhcp", "proxydhcp"} {
		t.Run(mode, func(t *testing.T) {
			p := newPXELab(t, mode)
			addr, path := p.ipxeDHCP(t, p.mac)
			if addr == "" {
				addr = "10.57.0.200"
			}
			token := p.script(t, path, addr)
			code, _, body := p.enroll(t, attackerAddr, token, p.mac.String(), p.csr(t))
			if code == http.StatusOK {
				t.Fatalf("enrollment from %s with the victim's MAC accepted", attackerAddr)
			}
			if !strings.Contains(body, attackerAddr) {
				t.Errorf("refusal %q does not name the address", body)
			}
			p.wantConflict(t, attackerAddr, addr)
			if code, _, _ := p.enroll(t, addr, token, p.mac.String(), p.csr(t)); code == http.StatusOK {
				t.Fatal("a certificate was handed out while the server is in conflict")
			}
		})
	}
}

// ProxyDHCP gives the lender no address to bind to before the script:
// an attacker that fetches and enrolls first wins a certificate, but the
// real server's fetch is then a second fetch: conflict, and the
// attacker's certificate is revoked.
func TestRealServerAfterAWinningAttackerRevokesItsCertificate(t *testing.T) {
	p := newPXELab(t, "proxydhcp")
	_, path := p.ipxeDHCP(t, p.mac)
	token := p.script(t, path, attackerAddr)
	code, resp, body := p.enroll(t, attackerAddr, token, p.mac.String(), p.csr(t))
	if code != http.StatusOK {
		t.Fatalf("the first fetcher's enrollment: %d %s", code, body)
	}
	_, path2 := p.ipxeDHCP(t, p.mac) // the real server boots
	if code, _ := p.get(path2, "10.57.0.200"); code == http.StatusOK {
		t.Fatal("second script of the boot served")
	}
	p.wantConflict(t, "second")
	crl, err := p.f.m.CRL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !crlLists(t, crl, resp.Certificate) {
		t.Fatal("the certificate issued in the conflicted boot is not on the CRL")
	}
}

// Image A retries its enrollment when the answer was lost: the same
// request again is answered with the same certificate, not a conflict;
// another key for the same boot is one.
func TestEnrollRetryIsIdempotentButAnotherKeyIsAConflict(t *testing.T) {
	p := newPXELab(t, "dhcp")
	addr, path := p.ipxeDHCP(t, p.mac)
	token := p.script(t, path, addr)
	csr := p.csr(t)
	_, first, _ := p.enroll(t, addr, token, p.mac.String(), csr)
	code, again, body := p.enroll(t, addr, token, p.mac.String(), csr)
	if code != http.StatusOK || again.Certificate != first.Certificate || first.Certificate == "" {
		t.Fatalf("retried enrollment: %d %s, want the same certificate again", code, body)
	}
	if s := p.server(t); s.Phase != PhaseEnrolled {
		t.Fatalf("after a retry: phase %q, want enrolled", s.Phase)
	}
	if code, _, _ := p.enroll(t, addr, token, p.mac.String(), p.csr(t)); code == http.StatusOK {
		t.Fatal("a second key enrolled in the same boot")
	}
	p.wantConflict(t, "second enrollment")
}

// An operator clears the conflict: a new boot with a new token, and the
// honest flow works again; the conflict was counted in /metrics.
func TestClearedConflictBootsAgain(t *testing.T) {
	p := newPXELab(t, "dhcp")
	addr, path := p.ipxeDHCP(t, p.mac)
	p.get(path, attackerAddr)
	p.wantConflict(t, attackerAddr)
	if _, ok := p.f.m.BootFor(p.mac.String()); ok {
		t.Error("a server in conflict still has a boot pending")
	}
	rec := httptest.NewRecorder()
	p.f.m.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/admin/servers/"+p.mac.String()+"/clear", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("clear: %d %s", rec.Code, rec.Body)
	}
	addr, path = p.ipxeDHCP(t, p.mac)
	token := p.script(t, path, addr)
	if code, _, body := p.enroll(t, addr, token, p.mac.String(), p.csr(t)); code != http.StatusOK {
		t.Fatalf("enrollment after clear: %d %s", code, body)
	}
	rec = httptest.NewRecorder()
	p.f.m.StatusHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `ferry_lender_boot_conflicts_total{reason="script-address"} 1`) {
		t.Errorf("/metrics lacks the conflict:\n%s", rec.Body)
	}
}

// crlLists reports whether the DER CRL lists the PEM certificate.
func crlLists(t *testing.T, crl []byte, certPEM string) bool {
	t.Helper()
	list, err := x509.ParseRevocationList(crl)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(certPEM))
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

// A restarted lender keeps the binding of a boot whose script was served:
// image A enrolls from the bound address, and another fetch of the boot
// is still a conflict.
func TestBoundBootSurvivesLenderRestart(t *testing.T) {
	f, path := fixtureAt(t, 1)
	p := &pxeLab{f: f}
	c := NetbootConfig{Interface: "lo", ServerIP: "10.57.0.1", Mode: "dhcp", PoolFirst: "10.57.0.100",
		PoolLast: "10.57.0.120", Prefix: "10.57.0.0/24", KernelA: "/k", InitrdA: "/i"}
	var err error
	if p.nb, err = netbootServer(f.m, c); err != nil {
		t.Fatal(err)
	}
	if p.lease, err = f.m.RequestLease(context.Background(), leaseReq("key-pxe-0002", 1)); err != nil {
		t.Fatal(err)
	}
	p.mac, _ = net.ParseMAC(p.lease.Servers[0].MAC)
	addr, path1 := p.ipxeDHCP(t, p.mac)
	token := p.script(t, path1, addr)

	f.restart(t, path)
	if p.nb, err = netbootServer(f.m, c); err != nil {
		t.Fatal(err)
	}
	if code, _, body := p.enroll(t, addr, token, p.mac.String(), p.csr(t)); code != http.StatusOK {
		t.Fatalf("enrollment after a restart: %d %s", code, body)
	}
	_, path2 := p.ipxeDHCP(t, p.mac)
	if code, _ := p.get(path2, addr); code == http.StatusOK {
		t.Fatal("a second script of the boot served after a restart")
	}
	p.wantConflict(t, "second script fetch")
}

// An agent cannot report a phase the lender sets itself: a report named
// "conflict" or "booting" would move the server in the lender's own
// state machine (a new boot at the next start, a conflict without its
// revocation).
func TestAgentCannotReportTheLendersOwnPhases(t *testing.T) {
	f := newFixture(t, 1)
	_, b := leaseAndBoot(t, f)
	resp, err := enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t)
	if err != nil {
		t.Fatal(err)
	}
	cert := parsePEMCert(t, resp.Certificate)
	who := lenderSubject(b)
	now := f.now
	for _, ph := range []string{PhaseBooting, PhaseEnrolled, PhaseReturning, PhaseReturned, PhaseConflict} {
		err := f.m.ReportPhase(context.Background(), who, cert.SerialNumber.Text(16),
			api.PhaseReport{LeaseID: b.LeaseID, ServerID: b.ServerID, Phase: ph, Start: now, End: now})
		if err == nil {
			t.Errorf("agent reported phase %q", ph)
		}
	}
	l, _ := f.m.Lease(context.Background(), b.LeaseID)
	if l.Servers[0].Phase != PhaseEnrolled {
		t.Fatalf("server phase %q after the refused reports, want enrolled", l.Servers[0].Phase)
	}
}

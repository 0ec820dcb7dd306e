package svctest

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/internal/netnstest"
	"ferry/ipsec/dataplane/dataplanetest"
	"ferry/ipsec/ike"
	"ferry/pki"
)

// gwLab is `ferry gateway` in a namespace of its own, reached across a
// veth from a namespace where lent servers are played in this process.
type gwLab struct {
	dir, config, status string
	gns, cns            *netnstest.NS
	ca                  *pki.CA
	file                map[string]any
	gw                  *proc
	n                   *notifySocket
}

var gwAddr = netip.MustParseAddr("10.77.0.2")

func newGWLab(t *testing.T) *gwLab {
	l := &gwLab{dir: t.TempDir()}
	l.gns, l.cns = netnstest.New(t, "gwr"), netnstest.New(t, "gwc")
	netnstest.Veth(t, netnstest.End{NS: l.cns, Name: "c0", Addr: netip.MustParsePrefix("10.77.0.1/24")},
		netnstest.End{NS: l.gns, Name: "g0", Addr: netip.MustParsePrefix("10.77.0.2/24")})
	ca, err := pki.NewCA("lender CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l.ca = ca
	key, cert, err := ca.Issue(pki.Identity{CommonName: "gateway", IPs: []net.IP{gwAddr.AsSlice()}}, pki.ECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := pki.MarshalKeyPEM(key)
	l.write(t, "ca.pem", ca.CertPEM())
	l.write(t, "gw.pem", pki.CertPEM(cert))
	l.write(t, "gw.key", kp)
	l.write(t, "allow.jsonl", nil)
	l.status = filepath.Join(l.dir, "gw.sock")
	l.config = filepath.Join(l.dir, "gateway.json")
	l.file = map[string]any{"listen": gwAddr.String(), "ca": filepath.Join(l.dir, "ca.pem"),
		"cert": filepath.Join(l.dir, "gw.pem"), "key": filepath.Join(l.dir, "gw.key"), "pool": "10.77.1.0/24",
		"subnets": []string{"10.77.2.0/24"}, "allow": filepath.Join(l.dir, "allow.jsonl"), "status": l.status,
		"status_listen": "off", "tun": "fgwr0", "dpd_seconds": 10}
	l.save(t)
	l.n = newNotifySocket(t)
	l.gw = start(t, l.gns.Command(ferryBin(), "gateway", "--config", l.config), l.n)
	l.n.expect(t, l.gw, "READY=1")
	return l
}

func (l *gwLab) write(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(l.dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (l *gwLab) save(t *testing.T) {
	t.Helper()
	b, _ := json.Marshal(l.file)
	l.write(t, "gateway.json", b)
}

// server plays a lent server: a one-time key on the allow list and an
// IKE initiator in the client namespace, connected until the test ends.
func (l *gwLab) server(t *testing.T, ip string) *ike.Daemon {
	t.Helper()
	key, cert, err := l.ca.Issue(pki.Identity{CommonName: "lent " + ip}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := pki.Pin(key.Public())
	f, err := os.OpenFile(filepath.Join(l.dir, "allow.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	json.NewEncoder(f).Encode(map[string]string{"pin": pin, "lease": "L-" + ip})
	f.Close()
	local := netip.MustParseAddr(ip)
	l.cns.Run(t, "", "ip", "addr", "add", ip+"/24", "dev", "c0")
	var d *ike.Daemon
	l.cns.Do(t, func() {
		d, err = ike.New(ike.Config{Local: local, Certs: []*x509.Certificate{cert}, Key: key.(crypto.Signer),
			CAs: []*x509.Certificate{l.ca.Cert}, DataPlane: dataplanetest.NewNull(), ForceEncap: true,
			Log: slog.New(slog.DiscardHandler)})
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// The gateway reads its allow list every 2 s: a refusal before that is retried.
	deadline := time.Now().Add(20 * time.Second)
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err := d.Connect(cctx, ike.Target{Gateway: gwAddr, RemoteSubnets: []netip.Prefix{netip.MustParsePrefix("10.77.2.0/24")}, VirtualIP: true})
		ccancel()
		if err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: connect: %v; the gateway's log:\n%s", ip, err, l.gw.log)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// sas is `ferry gateway status -o json`: what the operator sees.
func (l *gwLab) sas(t *testing.T) []ike.SAStatus {
	t.Helper()
	out, err := exec.Command(ferryBin(), "gateway", "status", "--status", l.status, "-o", "json").Output()
	if err != nil {
		t.Fatalf("gateway status: %v", err)
	}
	var s []ike.SAStatus
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("gateway status: %v: %s", err, out)
	}
	return s
}

var monotonic = regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[0-9]+\n`)

// `systemctl reload ferry-gateway` after editing gateway.json: the file
// is read again and checked; the timers, CA, key pair, CRL, subnets and
// DNS apply live (a server connecting afterwards gets the new DNS), the
// rest is named in one line as waiting for a restart, and the tunnel up
// before the reload stays up, the same SA. A broken file changes nothing
// and says which file, which setting and why. systemd hears RELOADING=1
// (with MONOTONIC_USEC) and READY=1 around each.
func TestGatewayReloadAppliesTheFile(t *testing.T) {
	netnstest.Require(t)
	l := newGWLab(t)
	l.server(t, "10.77.0.11")
	before := l.sas(t)
	if len(before) != 1 || before[0].State != "established" {
		t.Fatalf("before the reload: %+v", before)
	}

	l.file["dpd_seconds"] = 5
	l.file["dns"] = []string{"10.77.2.53"}
	l.file["listen"] = "10.77.0.3"
	l.file["pool"] = "10.77.5.0/24"
	l.file["crl"] = filepath.Join(l.dir, "lender.crl")
	l.save(t)
	l.gw.signal(t, syscall.SIGHUP)
	if got := l.n.next(t, l.gw); !monotonic.MatchString(got) {
		t.Fatalf("reload start: sd_notify %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	l.n.expect(t, l.gw, "READY=1")
	l.gw.waitLog(t, "gateway: reload: these settings change only at restart", "listen", "pool")
	line := l.gw.waitLog(t, "gateway: configuration reloaded", "dpd=5s")
	if !strings.Contains(line, "10.77.2.53") || !strings.Contains(line, "lender.crl") {
		t.Errorf("reloaded line %q lacks the new dns or crl", line)
	}
	after := l.sas(t)
	if len(after) != 1 || after[0].SPIi != before[0].SPIi || after[0].SPIr != before[0].SPIr || after[0].State != "established" {
		t.Fatalf("the SA did not survive the reload: before %+v, after %+v", before, after)
	}
	// Live: the next server is told the new name server; listen and
	// pool stayed: it connected to the old address and got the old pool.
	d := l.server(t, "10.77.0.12")
	st := d.Status()
	if len(st) != 1 || !slices.Contains(st[0].DNS, netip.MustParseAddr("10.77.2.53")) || !strings.HasPrefix(st[0].VirtualIP, "10.77.1.") {
		t.Fatalf("server after the reload: %+v, want DNS 10.77.2.53 and an address of 10.77.1.0/24", st)
	}

	// A broken file: refused, named, the running configuration stays.
	l.file["dpd_seconds"] = -1
	l.save(t)
	l.gw.signal(t, syscall.SIGHUP)
	l.n.expect(t, l.gw, "RELOADING=1")
	l.n.expect(t, l.gw, "READY=1")
	l.gw.waitLog(t, "gateway: reload refused, the running configuration stays", l.config, "dpd_seconds -1")
	if n := l.gw.countLog("gateway: configuration reloaded"); n != 1 {
		t.Fatalf("%d reloads applied, want 1 (the broken file applied?)", n)
	}
	if got := l.sas(t); len(got) != 2 {
		t.Fatalf("after the refused reload: %d SAs, want 2: %+v", len(got), got)
	}

	// systemctl stop: STOPPING=1, exit 0.
	l.gw.signal(t, syscall.SIGTERM)
	l.n.expect(t, l.gw, "STOPPING=1")
	if err := l.gw.stop(15 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, l.gw.log)
	}
}

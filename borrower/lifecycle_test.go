package borrower_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ferry/api"
	"ferry/borrower"
	"ferry/ipsec/ike"
	"ferry/lender"
)

// lab is a real `ferry lender` and `ferry borrower` on loopback.
type lab struct {
	bin, dir, ldir, bdir string
	lcfg, bcfg           string
	agentURL             string
	lenderStatus         string // the lender's status listener (/metrics, status page)
	lenderP, borrowerP   *proc
	qmp                  *fakeQMP
	gw                   *gatewayStatus
	macs                 []string
}

func newLab(t *testing.T, bin string) *lab { return newLabWith(t, bin, nil) }

// newLabWith lets edit change the borrower's configuration before start.
func newLabWith(t *testing.T, bin string, edit func(cfg map[string]any)) *lab {
	dir := t.TempDir()
	l := &lab{bin: bin, dir: dir, ldir: filepath.Join(dir, "lender"), bdir: filepath.Join(dir, "borrower")}
	l.qmp = startQMP(t, dir)
	lorg, borg := newOrgCA(t, dir, "lender-org"), newOrgCA(t, dir, "borrower-org")
	lcert, lkey := lorg.issue(t, dir, "lender-m2m", true)
	bcert, bkey := borg.issue(t, dir, "borrower-m2m", false)
	icert, ikey := borg.issue(t, dir, "borrower-images", true)
	ports := borrower.FreePorts{}
	agent, m2m := ports.Pick(t), ports.Pick(t)
	l.lenderStatus = ports.Pick(t)
	l.agentURL = "https://" + agent
	l.lcfg, l.bcfg = filepath.Join(dir, "lender.json"), filepath.Join(dir, "borrower.json")
	writeJSON(t, l.lcfg, map[string]any{"dir": l.ldir, "agent_listen": agent, "public_url": l.agentURL,
		"m2m_listen": m2m, "m2m_cert": lcert, "m2m_key": lkey, "m2m_client_ca": borg.file, "token_ttl": "5m",
		"status_listen": l.lenderStatus})
	tmpl := filepath.Join(dir, "template")
	os.MkdirAll(filepath.Join(tmpl, "etc"), 0o755)
	os.WriteFile(filepath.Join(tmpl, "etc", "hostname"), []byte("lent\n"), 0o644)
	l.gw = startGatewayStatus(t, dir)
	bcfg := map[string]any{"dir": l.bdir, "lender_url": "https://" + m2m,
		"m2m_cert": bcert, "m2m_key": bkey, "m2m_ca": lorg.file, "borrower_ca": borg.file,
		"gateway": "127.0.0.1:500", "allow_file": filepath.Join(dir, "allow.jsonl"), "gateway_status": l.gw.path,
		"image_listen": ports.Pick(t), "image_url": "https://127.0.0.1:1/images", "image_cert": icert, "image_key": ikey,
		"tunnel_pool": "127.44.0.0/16", "nfs_server": "10.44.0.2", "nfs_export": "/srv/roots", "nfs_exports": "none",
		"default_template": tmpl, "poll_seconds": 1, "status_listen": ports.Pick(t)}
	if edit != nil {
		edit(bcfg)
	}
	writeJSON(t, l.bcfg, bcfg)
	l.must(t, "lender", "init", "--dir", l.ldir, "--config", filepath.Join(l.ldir, "lender-init.json"), "--host", "127.0.0.1")
	l.startLender(t)
	for i := range 3 {
		mac := fmt.Sprintf("52:54:00:41:00:%02x", i)
		l.macs = append(l.macs, mac)
		l.must(t, "lender", "server", "add", "--dir", l.ldir, "--mac", mac, "--power", "qmp", "--power-opt", "socket="+l.qmp.path)
	}
	k, i := imageB(t, dir)
	l.must(t, "borrower", "image", "add", "--dir", l.bdir, "b1", "--kernel", k, "--initrd", i, "--cmdline", "console=ttyS0")
	l.startBorrower(t)
	return l
}

func (l *lab) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := l.ferry(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (l *lab) startLender(t *testing.T) {
	l.lenderP = l.start(t, "lender", "serve", "--config", l.lcfg)
	waitFor(t, "lender admin socket", func() error {
		_, err := l.ferry("lender", "server", "list", "--dir", l.ldir)
		return err
	})
}

func (l *lab) startBorrower(t *testing.T) {
	l.borrowerP = l.start(t, "borrower", "serve", "--config", l.bcfg)
	waitFor(t, "borrower admin socket", func() error {
		_, err := l.ferry("borrower", "lease", "list", "--dir", l.bdir)
		return err
	})
}

// agent is a simulated lent server speaking the real protocol.
type agent struct {
	mac  string
	boot lender.Boot
	key  *ecdsa.PrivateKey
	resp api.EnrollResponse
	cert tls.Certificate
}

func (l *lab) bootParams(t *testing.T, mac string) lender.Boot {
	var b lender.Boot
	if err := json.Unmarshal([]byte(l.must(t, "lender", "boot", "--dir", l.ldir, mac)), &b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (a *agent) post(t *testing.T, url string, client *tls.Certificate, in, out any) (int, string) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: api.PinnedClientTLS(a.boot.CAPin, "127.0.0.1", client)}}
	body, _ := json.Marshal(in)
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		json.Unmarshal(data, out)
	}
	return resp.StatusCode, string(data)
}

// enroll sends a CSR for the lease's subject with the boot's token.
func (a *agent) enroll(t *testing.T) (int, string) {
	a.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: a.boot.LeaseID + "/" + a.boot.ServerID}}, a.key)
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	code, body := a.post(t, a.boot.ManagerURL+api.PathEnroll, nil, api.EnrollRequest{Token: a.boot.Token, MAC: a.mac, CSR: csr}, &a.resp)
	if code == 200 {
		blk, _ := pem.Decode([]byte(a.resp.Certificate))
		a.cert = tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: a.key}
	}
	return code, body
}

func (a *agent) pin() string {
	leaf, _ := x509.ParseCertificate(a.cert.Certificate[0])
	return fmt.Sprintf("%x", sha256sum(leaf.RawSubjectPublicKeyInfo))
}

var leaseLine = regexp.MustCompile(`lease (B[0-9a-f]+)\s+state (\S+)`)

// lifecycle runs request, enrollment, phases and return; after step
// killAt (1-based; 0: never) it kills the victim with SIGKILL and restarts it.
func lifecycle(t *testing.T, l *lab, victim string, killAt int) {
	var id string
	var agents []*agent
	steps := []func(){
		func() {
			out := l.must(t, "borrower", "lease", "request", "--dir", l.bdir, "--count", "2", "--image", "b1", "--key", "req-0000001")
			m := leaseLine.FindStringSubmatch(out)
			if m == nil || m[2] != "active" {
				t.Fatalf("lease request printed %q, want an active lease", out)
			}
			id = m[1]
			again := l.must(t, "borrower", "lease", "request", "--dir", l.bdir, "--count", "2", "--image", "b1", "--key", "req-0000001")
			if m2 := leaseLine.FindStringSubmatch(again); m2 == nil || m2[1] != id {
				t.Fatalf("retried request printed %q, want lease %s again", again, id)
			}
		},
		func() {
			var ls []api.Lease
			if err := api.UnixClient(lender.AdminSocket(l.ldir)).Call(t.Context(), "GET", "/admin/leases", nil, &ls); err != nil || len(ls) != 1 {
				t.Fatalf("lender has %d leases (%v), want 1", len(ls), err)
			}
			for _, s := range ls[0].Servers {
				a := &agent{mac: s.MAC, boot: l.bootParams(t, s.MAC)}
				if code, body := a.enroll(t); code != 200 {
					t.Fatalf("enroll %s: %d %s", s.MAC, code, body)
				}
				agents = append(agents, a)
			}
		},
		func() {
			for _, a := range agents {
				for _, ph := range []string{"enroll", "tunnel-a"} {
					start := time.Now().Add(-time.Second)
					p := api.PhaseReport{LeaseID: a.resp.LeaseID, ServerID: a.resp.ServerID, Phase: ph, Start: start, End: start.Add(300 * time.Millisecond), Bytes: 4096}
					if code, body := a.post(t, l.agentURL+api.PathPhase, &a.cert, p, nil); code != 204 {
						t.Fatalf("phase %s of %s: %d %s", ph, a.mac, code, body)
					}
				}
			}
			waitFor(t, "borrower to show the enrolled keys and phases", func() error {
				out, err := l.ferry("borrower", "lease", "show", "--dir", l.bdir, id)
				for _, a := range agents {
					if err == nil && (!strings.Contains(out, a.pin()) || !strings.Contains(out, "tunnel-a")) {
						err = fmt.Errorf("lease show lacks pin %s or phase tunnel-a:\n%s", a.pin(), out)
					}
				}
				return err
			})
			l.checkImageServing(t, agents[0].pin())
		},
		func() {
			out := l.must(t, "borrower", "lease", "return", "--dir", l.bdir, id)
			if !strings.Contains(out, "state returned") {
				t.Fatalf("lease return printed %q", out)
			}
		},
	}
	for i, step := range steps {
		step()
		if i+1 == killAt {
			if victim == "lender" {
				l.lenderP.kill()
				l.startLender(t)
			} else {
				l.borrowerP.kill()
				l.startBorrower(t)
			}
		}
	}
	l.checkReturned(t, id, agents, 2)
}

// checkReturned: one lease, returned, nothing doubled, certificates on
// the CRL, servers free and powered off, keys off the gateway, roots gone.
func (l *lab) checkReturned(t *testing.T, id string, agents []*agent, phases int) {
	var ls []api.Lease
	if err := api.UnixClient(lender.AdminSocket(l.ldir)).Call(t.Context(), "GET", "/admin/leases", nil, &ls); err != nil || len(ls) != 1 {
		t.Fatalf("lender has %d leases (%v), want exactly 1", len(ls), err)
	}
	for _, s := range ls[0].Servers {
		if len(s.Phases) != phases {
			t.Errorf("server %s has %d phase reports, want %d (none lost or doubled)", s.ID, len(s.Phases), phases)
		}
	}
	crl := l.crl(t, agents[0])
	for _, a := range agents {
		leaf, _ := x509.ParseCertificate(a.cert.Certificate[0])
		if !crl[leaf.SerialNumber.Text(16)] {
			t.Errorf("CRL lacks the certificate of %s (serial %x)", a.mac, leaf.SerialNumber)
		}
	}
	waitFor(t, "servers back in the pool", func() error {
		out, err := l.ferry("lender", "server", "list", "--dir", l.ldir)
		if err == nil && strings.Contains(out, "leased") {
			err = fmt.Errorf("still leased:\n%s", out)
		}
		return err
	})
	if n := l.qmp.count("system_powerdown"); n < 2 {
		t.Errorf("QMP got %d powerdowns, want one per returned server", n)
	}
	if data, _ := os.ReadFile(filepath.Join(l.dir, "allow.jsonl")); strings.Contains(string(data), "pin") {
		t.Errorf("gateway allow list still has keys after return:\n%s", data)
	}
	if roots, _ := filepath.Glob(filepath.Join(l.bdir, "roots", id+"-*")); len(roots) != 0 {
		t.Errorf("roots left after return: %v", roots)
	}
}

func (l *lab) crl(t *testing.T, a *agent) map[string]bool {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: api.PinnedClientTLS(a.boot.CAPin, "127.0.0.1", nil)}}
	resp, err := hc.Get(l.agentURL + api.PathCRL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	der, _ := io.ReadAll(resp.Body)
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("CRL: %v", err)
	}
	out := map[string]bool{}
	for _, e := range list.RevokedCertificateEntries {
		out[e.SerialNumber.Text(16)] = true
	}
	return out
}

// checkImageServing: the gateway reports the server with pin at one
// virtual IP; image B goes to that address only, and only its lease's
// image; /metrics shows the active lease.
func (l *lab) checkImageServing(t *testing.T, pin string) {
	vip := l.tunnelAddr(t, pin)
	// Just connected, not listed by the gateway yet: ask again, not a
	// refusal (the gateway lists a tunnel a moment after its IKE_AUTH).
	l.gw.set()
	if code, body := l.imageGet(t, vip, "/b1/vmlinuz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not listed by the gateway yet") {
		t.Errorf("GET from %s before the gateway lists it: %d %q, want 503 saying not listed yet", vip, code, body)
	}
	l.gw.set(ike.SAStatus{Role: "responder", State: "established", Pin: pin, VirtualIP: vip},
		ike.SAStatus{Role: "responder", State: "established", Pin: strings.Repeat("0", 64), VirtualIP: "127.44.0.12"})
	// The borrower keeps a miss up to a quarter second before asking the
	// gateway again.
	waitFor(t, "the gateway's new list to reach the image gate", func() error {
		if code, body := l.imageGet(t, vip, "/b1/vmlinuz"); code != http.StatusOK {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	for _, c := range []struct {
		from, path string
		code       int
		why        string
	}{
		{"127.0.0.1", "/b1/vmlinuz", 403, "not a tunnel address"},
		{vip, "/b1/vmlinuz", 200, ""},
		{vip, "/b1/initrd.img", 200, ""},
		{vip, "/b1/modules.cpio", 404, "image has no module bundle"},
		{vip, "/b2/vmlinuz", 403, vip + ` is a server of lease`},
		{"127.44.0.11", "/b1/vmlinuz", 403, "127.44.0.11 is held by no server connected to the gateway"},
		{"127.44.0.12", "/b1/vmlinuz", 403, "127.44.0.12 is held by no server of an active lease"},
	} {
		code, body := l.imageGet(t, c.from, c.path)
		if code != c.code || !strings.Contains(body, c.why) {
			t.Errorf("GET %s from %s: %d %q, want %d naming %q", c.path, c.from, code, body, c.code, c.why)
		}
	}
	if body := l.metrics(t); !strings.Contains(body, `ferry_borrower_leases{state="active"} 1`) {
		t.Errorf("borrower /metrics lacks the active lease:\n%s", body)
	}
	// Lent servers reach the image listener: it serves no /metrics.
	if code, body := l.imageGet(t, vip, "/metrics"); code != http.StatusNotFound && code != http.StatusForbidden || strings.Contains(body, "ferry_") {
		t.Errorf("image listener GET /metrics from a lent server: %d %q, want no series", code, body)
	}
}

// tunnelAddr is the tunnel address the borrower gave the server whose
// key has pin.
func (l *lab) tunnelAddr(t *testing.T, pin string) string {
	t.Helper()
	var ls []borrower.Lease
	if err := api.UnixClient(borrower.AdminSocket(l.bdir)).Call(t.Context(), "GET", "/admin/leases", nil, &ls); err != nil {
		t.Fatal(err)
	}
	for _, le := range ls {
		for i, s := range le.Lender.Servers {
			if s.SPKIPin == pin && i < len(le.Addrs) {
				return le.Addrs[i].String()
			}
		}
	}
	t.Fatalf("no tunnel address for pin %s in the borrower's leases", pin)
	return ""
}

func TestLeaseLifecycleBetweenRealManagers(t *testing.T) {
	bin := buildFerry(t)
	lifecycle(t, newLab(t, bin), "", 0)
}

func TestManagersKilledAtEachStepLoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 16 manager processes")
	}
	bin := buildFerry(t)
	for _, victim := range []string{"lender", "borrower"} {
		for step := 1; step <= 4; step++ {
			t.Run(fmt.Sprintf("%s-after-step-%d", victim, step), func(t *testing.T) {
				lifecycle(t, newLab(t, bin), victim, step)
			})
		}
	}
}

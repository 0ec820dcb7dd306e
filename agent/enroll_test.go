package agent

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ferry/api"
	"ferry/lender"
	"ferry/lender/lendertest"
	"ferry/lenderca"
	"ferry/pki"
)

const testMAC = "52:54:00:50:00:01"

// realLender is a lender manager with one server, leased, behind its
// agent API on loopback TLS: what image A talks to.
type realLender struct {
	m    *lender.Manager
	url  string
	ca   *lenderca.CA
	boot lender.Boot
}

func newRealLender(t *testing.T) *realLender {
	t.Helper()
	a := lendertest.NewAgent(t)
	l := &realLender{m: a.M, url: a.URL, ca: a.CA}
	ctx := t.Context()
	if _, err := l.m.AddServer(ctx, lender.Server{MAC: testMAC, Power: "manual", Pool: "p"}); err != nil {
		t.Fatal(err)
	}
	borrowerCA, err := pki.NewCA("borrower", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req := api.LeaseRequest{IdempotencyKey: "agent-test-1", Count: 1, Gateway: "10.50.1.1:500",
		BorrowerCA: string(borrowerCA.CertPEM()), DurationSeconds: 3600,
		Image: api.Image{Kernel: api.Artifact{URL: "https://10.50.2.1/b1/vmlinuz", SHA256: strings.Repeat("a", 64)},
			Initrd: api.Artifact{URL: "https://10.50.2.1/b1/initrd.img", SHA256: strings.Repeat("b", 64)}},
		Roots: []api.NFSRoot{{Server: "10.50.2.2", Path: "/roots/s1"}}}
	if _, err := l.m.RequestLease(ctx, req); err != nil {
		t.Fatal(err)
	}
	b, ok := l.m.BootFor(testMAC)
	if !ok {
		t.Fatal("no boot for the leased server")
	}
	l.boot = b
	return l
}

// agentA is image A booted with cmdline, its NIC up with testMAC.
func agentA(t *testing.T, cmdline string) *Agent {
	t.Helper()
	a, err := New(io.Discard, slog.New(slog.DiscardHandler), cmdline)
	if err != nil {
		t.Fatal(err)
	}
	a.mac = testMAC
	return a
}

func (l *realLender) server(t *testing.T) api.LeaseServer {
	t.Helper()
	ls, err := l.m.Leases(t.Context())
	if err != nil || len(ls) != 1 || len(ls[0].Servers) != 1 {
		t.Fatalf("lender leases = %+v, %v", ls, err)
	}
	return ls[0].Servers[0]
}

func TestEnrollGetsOneTimeCertificateAndReportsEveryPhase(t *testing.T) {
	l := newRealLender(t)
	a := agentA(t, "console=ttyS0 "+l.boot.KernelParam)
	ctx := context.Background()
	a.booted(ctx, "boot-a")
	if err := a.phase(ctx, "enroll", a.enroll); err != nil {
		t.Fatal(err)
	}
	a.rep.drain() // reports go out in the background; the hand-over drains them
	s := l.server(t)
	pin, _ := pki.Pin(a.ident.Key.Public())
	if s.SPKIPin != pin {
		t.Errorf("lender signed key %s, the agent holds %s", s.SPKIPin, pin)
	}
	if len(s.Phases) != 2 || s.Phases[0].Phase != "boot-a" || s.Phases[1].Phase != "enroll" {
		t.Errorf("lender has phases %+v, want boot-a (queued before enrollment) then enroll", s.Phases)
	}
	if a.ident.Gateway.String() != "10.50.1.1" || a.settings.Root.Server != "10.50.2.2" {
		t.Errorf("lease info: gateway %s root %s", a.ident.Gateway, a.settings.Root.Server)
	}
}

func TestEnrollRefusesReusedToken(t *testing.T) {
	l := newRealLender(t)
	if err := agentA(t, l.boot.KernelParam).enroll(t.Context()); err != nil {
		t.Fatal(err)
	}
	err := agentA(t, l.boot.KernelParam).enroll(t.Context())
	if err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("second enrollment with the same token: %v, want a refusal saying it was used", err)
	}
}

func TestEnrollRefusesLenderWithoutPinnedCA(t *testing.T) {
	l := newRealLender(t)
	other := strings.Replace(l.boot.KernelParam, "ferry.ca="+l.boot.CAPin, "ferry.ca="+strings.Repeat("0", 64), 1)
	err := agentA(t, other).enroll(t.Context())
	if err == nil || !strings.Contains(err.Error(), "pinned fingerprint") {
		t.Fatalf("enrollment with another CA pin: %v, want a refusal naming the pin", err)
	}
}

func TestEnrollRefusesCommandLineWithoutTrace(t *testing.T) {
	l := newRealLender(t)
	cmd := strings.Fields(l.boot.KernelParam)
	err := agentA(t, strings.Join(cmd[:len(cmd)-1], " ")).enroll(t.Context())
	if err == nil || !strings.Contains(err.Error(), "ferry.trace") {
		t.Fatalf("enrollment without ferry.trace=: %v", err)
	}
}

// TestEnrollRefusesLentServerPosingAsLender is hole 4 of "Trust
// boundaries": a lent server's root can read its one-time key, and the
// lender CA signed its certificate, so on the lender network it could
// answer another server's enrollment. The agent must refuse it in the
// handshake, before a byte of the enrollment goes out.
func TestEnrollRefusesLentServerPosingAsLender(t *testing.T) {
	l := newRealLender(t)
	lent := agentA(t, l.boot.KernelParam)
	if err := lent.enroll(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The impostor serves with what the lent server holds: its one-time
	// certificate and key, and the lender CA's certificate behind it.
	oneTime := tls.Certificate{Certificate: [][]byte{lent.ident.Certs[0].Raw, l.ca.Cert.Raw}, PrivateKey: lent.ident.Key}
	asked := make(chan string, 1)
	imp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- r.URL.Path:
		default:
		}
		http.Error(w, "gateway rewritten", http.StatusTeapot)
	}))
	imp.TLS = &tls.Config{Certificates: []tls.Certificate{oneTime}}
	imp.StartTLS()
	defer imp.Close()

	victim := strings.Replace(l.boot.KernelParam, "ferry.lender="+l.url, "ferry.lender="+imp.URL, 1)
	if victim == l.boot.KernelParam {
		t.Fatalf("kernel parameters %q do not name the lender %s", l.boot.KernelParam, l.url)
	}
	err := agentA(t, victim).enroll(t.Context())
	if err == nil || !strings.Contains(err.Error(), "one-time") {
		t.Fatalf("enrollment at a server presenting a one-time certificate: %v, want a refusal naming the one-time certificate", err)
	}
	select {
	case p := <-asked:
		t.Fatalf("the impostor got a request for %s: the agent sent its enrollment", p)
	default:
	}
	t.Logf("refused: %v", err)
}

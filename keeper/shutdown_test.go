package keeper

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testCA is a CA made in memory, with leaves it signs.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

// leaf signs a certificate for a new key; eku empty means none.
func (ca *testCA) leaf(t *testing.T, cn string, eku ...x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: eku}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func (ca *testCA) client(t *testing.T, cn string) *tls.Certificate {
	c, k := ca.leaf(t, cn, x509.ExtKeyUsageClientAuth)
	return &tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
}

// shutdownLab is a keeper's shutdown listener on loopback, with its
// one-time certificate from a lender CA and the borrower CA to trust,
// and a child process standing in for the root's init.
type shutdownLab struct {
	k        *Keeper
	addr     string
	borrower *testCA
	init     *exec.Cmd
	exited   chan error
}

func newShutdownLab(t *testing.T) *shutdownLab {
	lender, borrower := newTestCA(t, "lender-org"), newTestCA(t, "borrower-org")
	cert, key := lender.leaf(t, "L1/s1")
	init := exec.Command("sleep", "60")
	if err := init.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- init.Wait() }()
	t.Cleanup(func() { init.Process.Kill() })
	k := New(Options{Trace: "L1-s1", StateDir: t.TempDir(), Mountinfo: filepath.Join("testdata", "mountinfo-nfs"),
		Identity: &Identity{Certs: []*x509.Certificate{cert}, Key: key, CAs: []*x509.Certificate{borrower.cert}},
		PowerOff: PowerOff{Signal: "SIGUSR2", InitPID: init.Process.Pid}}, slog.New(slog.DiscardHandler))
	cfg, err := k.opt.Identity.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go k.serveShutdown(ctx, ln, cfg)
	return &shutdownLab{k: k, addr: ln.Addr().String(), borrower: borrower, init: init, exited: exited}
}

// post sends the shutdown request with client (nil: no certificate).
func (l *shutdownLab) post(client *tls.Certificate) (*http.Response, error) {
	cfg := &tls.Config{InsecureSkipVerify: true} // the borrower checks the key's pin; not under test here
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	return hc.Post("https://"+l.addr+PathShutdown, "", nil)
}

// initAlive reports whether the stand-in init is still running a while
// after a request.
func (l *shutdownLab) initAlive() bool {
	select {
	case <-l.exited:
		return false
	case <-time.After(200 * time.Millisecond):
		return true
	}
}

func TestShutdownRefusesRequestWithoutClientCertificate(t *testing.T) {
	l := newShutdownLab(t)
	resp, err := l.post(nil)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("answered %s without a client certificate", resp.Status)
	}
	if !l.initAlive() {
		t.Fatal("init was signalled for a request without a client certificate")
	}
}

func TestShutdownRefusesClientCertificateOfAnotherCA(t *testing.T) {
	l := newShutdownLab(t)
	other := newTestCA(t, "borrower-org") // same name, other key
	resp, err := l.post(other.client(t, "borrower-manager"))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("answered %s to a certificate of another CA", resp.Status)
	}
	if !l.initAlive() {
		t.Fatal("init was signalled for a certificate of another CA")
	}
}

func TestShutdownSignalsInitForTheBorrowerAndAnswers202(t *testing.T) {
	l := newShutdownLab(t)
	resp, err := l.post(l.borrower.client(t, "borrower-manager"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans ShutdownAnswer
	json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&ans)
	if resp.StatusCode != http.StatusAccepted || ans.Signal != "SIGUSR2" || !strings.Contains(ans.Client, "borrower-manager") {
		t.Fatalf("answer %s %+v, want 202 naming SIGUSR2 and the client", resp.Status, ans)
	}
	select {
	case err := <-l.exited:
		ws, _ := l.init.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGUSR2 {
			t.Fatalf("init ended with %v, want killed by SIGUSR2", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("init got no signal")
	}
	if st, err := l.k.Status(); err != nil || !st.ShutdownRequested {
		t.Fatalf("status %+v (%v), want shutdown_requested", st, err)
	}
}

func TestShutdownListenerNeedsAnIdentity(t *testing.T) {
	if _, err := (*Identity)(nil).TLSConfig(); err == nil {
		t.Fatal("TLS config made without a certificate")
	}
}

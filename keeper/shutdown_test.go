package keeper

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"ferry/api"
	"ferry/pki"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testCA is pki's in-memory test CA, with the shortcuts these tests use.
type testCA struct{ *pki.CA }

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca, err := pki.NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{ca}
}

// leaf issues a certificate for a new P-256 key (server and client use).
func (ca *testCA) leaf(t *testing.T, cn string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, cert, err := ca.Issue(pki.Identity{CommonName: cn}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func (ca *testCA) client(t *testing.T, cn string) *tls.Certificate {
	c, k := ca.leaf(t, cn)
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
	return newShutdownLabWith(t, PowerOff{Signal: "SIGUSR2"})
}

// newShutdownLabWith takes the power-off setting po (its InitPID is the
// stand-in init's).
func newShutdownLabWith(t *testing.T, po PowerOff) *shutdownLab {
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
		Identity: &Identity{Certs: []*x509.Certificate{cert}, Key: key, CAs: []*x509.Certificate{borrower.Cert}},
		PowerOff: po}, slog.New(slog.DiscardHandler))
	k.opt.PowerOff.InitPID = init.Process.Pid
	k.opt.ShutdownListen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e, err := k.listenShutdown(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ln := e.listeners[0]
	return &shutdownLab{k: k, addr: ln.Addr().String(), borrower: borrower, init: init, exited: exited}
}

// post sends the shutdown request with client (nil: no certificate).
func (l *shutdownLab) post(client *tls.Certificate) (*http.Response, error) {
	cfg := &tls.Config{InsecureSkipVerify: true} // the borrower checks the key's pin; not under test here
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	return hc.Post("https://"+l.addr+api.PathShutdown, "", nil)
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
	var ans api.ShutdownAnswer
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

func TestShutdownRunsTheRootsPoweroffForAnotherInitAndAnswers202(t *testing.T) {
	// The stand-in init is sleep: neither systemd nor busybox.
	root := fakeRoot(t, map[string]string{"/usr/sbin/poweroff": `echo "telinit 0" >"$(dirname "$0")/../../ran"`})
	l := newShutdownLabWith(t, PowerOff{Signal: "auto", Root: root})
	resp, err := l.post(l.borrower.client(t, "borrower-manager"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans api.ShutdownAnswer
	json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&ans)
	if resp.StatusCode != http.StatusAccepted || ans.Command != "/usr/sbin/poweroff" || ans.Signal != "" || ans.PID != l.init.Process.Pid {
		t.Fatalf("answer %s %+v, want 202 naming /usr/sbin/poweroff and no signal", resp.Status, ans)
	}
	if b, err := os.ReadFile(filepath.Join(root, "ran")); err != nil || string(b) != "telinit 0\n" {
		t.Fatalf("the root's poweroff did not run: %q %v", b, err)
	}
	if !l.initAlive() {
		t.Fatal("the init was signalled as well")
	}
	if st, err := l.k.Status(); err != nil || !st.ShutdownRequested {
		t.Fatalf("status %+v (%v), want shutdown_requested", st, err)
	}
}

func TestShutdownReportsAFailedPoweroff(t *testing.T) {
	root := fakeRoot(t, map[string]string{"/sbin/poweroff": `echo "init: timeout opening/writing control channel /run/initctl"; exit 1`})
	l := newShutdownLabWith(t, PowerOff{Signal: "auto", Root: root})
	resp, err := l.post(l.borrower.client(t, "borrower-manager"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "/sbin/poweroff: exit status 1") ||
		!strings.Contains(string(body), "control channel /run/initctl") {
		t.Fatalf("answer %s %q, want 500 naming the command, its exit and its output", resp.Status, body)
	}
	if st, err := l.k.Status(); err != nil || st.ShutdownRequested {
		t.Fatalf("status %+v (%v), want no shutdown_requested after a failed poweroff", st, err)
	}
}

func TestShutdownListenerNeedsAnIdentity(t *testing.T) {
	if _, err := (*Identity)(nil).TLSConfig(); err == nil {
		t.Fatal("TLS config made without a certificate")
	}
}

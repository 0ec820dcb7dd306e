package borrower

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ferry/api"
	"ferry/keeper"
	"ferry/pki"
)

// shutCA is pki's in-memory test CA, with the shortcuts these tests use.
type shutCA struct{ *pki.CA }

func newShutCA(t *testing.T, cn string) *shutCA {
	t.Helper()
	ca, err := pki.NewCA(cn, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &shutCA{ca}
}

// leaf issues a certificate for a new P-256 key (server and client use).
func (ca *shutCA) leaf(t *testing.T, cn string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, cert, err := ca.Issue(pki.Identity{CommonName: cn}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// writePair writes a leaf of ca and its key as PEM files in dir.
func (ca *shutCA) writePair(t *testing.T, dir, name string) (string, string) {
	c, k := ca.leaf(t, name)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	os.WriteFile(cf, pki.CertPEM(c), 0o644)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	return cf, kf
}

func (ca *shutCA) pem() []byte { return ca.CertPEM() }

// lentServer is a real keeper on loopback (its one-time certificate from
// a lender CA, trusting keeperCA's clients) whose root's init is a child
// process; the gateway shows its tunnel for as long as that init runs.
type lentServer struct {
	pin    string
	port   int
	init   *exec.Cmd
	exited chan struct{}
}

func startLentServer(t *testing.T, keeperCA *shutCA, initScript string) *lentServer {
	lender := newShutCA(t, "lender-org")
	cert, key := lender.leaf(t, "L1/s1")
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	init := exec.Command("sh", "-c", initScript)
	if err := init.Start(); err != nil {
		t.Fatal(err)
	}
	s := &lentServer{pin: hex.EncodeToString(sum[:]), init: init, exited: make(chan struct{})}
	go func() { init.Wait(); close(s.exited) }()
	t.Cleanup(func() { init.Process.Kill() })
	// A port below the ephemeral range: one from :0, closed again, could
	// be any outgoing connection's before the keeper binds it.
	_, port, _ := net.SplitHostPort(FreePorts{}.Pick(t))
	s.port, _ = strconv.Atoi(port)
	mi := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(mi, []byte("40 1 0:33 / / rw - nfs4 10.9.0.1:/ rw,vers=4.1\n"), 0o644)
	k := keeper.New(keeper.Options{Listen: "127.0.0.1:0", ShutdownListen: "127.0.0.1:" + strconv.Itoa(s.port),
		StateDir: t.TempDir(), Mountinfo: mi,
		Identity: &keeper.Identity{Certs: []*x509.Certificate{cert}, Key: key, CAs: []*x509.Certificate{keeperCA.Cert}},
		PowerOff: keeper.PowerOff{Signal: "SIGUSR2", InitPID: init.Process.Pid}}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go k.Run(ctx)
	waitListening(t, s.port)
	return s
}

func waitListening(t *testing.T, port int) {
	for range 100 {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("keeper not listening on %d", port)
}

// Peers is the gateway as the borrower sees it: the server's tunnel while
// its init runs.
func (s *lentServer) Peers(ctx context.Context) ([]Peer, error) {
	select {
	case <-s.exited:
		return nil, nil
	default:
		return []Peer{{VIP: netip.MustParseAddr("127.0.0.1"), Pin: s.pin}}, nil
	}
}

// returner is the borrower manager's return step for one lease of s,
// with a client certificate of borrowerCA.
func returner(t *testing.T, s *lentServer, borrowerCA *shutCA, wait int) (*Manager, Lease) {
	dir := t.TempDir()
	cf, kf := borrowerCA.writePair(t, dir, "borrower-keeper-client")
	cfg := Config{BorrowerCA: filepath.Join(dir, "ca.pem"), KeeperClientCert: cf, KeeperClientKey: kf,
		KeeperTLSPort: s.port, ShutdownWaitSeconds: wait, ShutdownGraceMS: -1}
	kc, err := keeperClientCert(cfg, borrowerCA.pem())
	if err != nil {
		t.Fatal(err)
	}
	m := &Manager{cfg: cfg, tunnels: s, keeperCert: kc, log: slog.New(slog.DiscardHandler)}
	l := Lease{ID: "B1", Lender: api.Lease{ID: "L1", Servers: []api.LeaseServer{{ID: "s1", SPKIPin: s.pin}}}}
	return m, l
}

func TestReturnShutsTheServerDownThroughItsKeeper(t *testing.T) {
	ca := newShutCA(t, "borrower-org")
	s := startLentServer(t, ca, "exec sleep 60") // killed by SIGUSR2, as busybox init powers off on it
	m, l := returner(t, s, ca, 10)
	got := m.shutdownServers(context.Background(), l)
	if len(got) != 1 || got[0].Outcome != ShutdownClean || got[0].VIP != "127.0.0.1" {
		t.Fatalf("shutdown = %+v, want s1 clean at 127.0.0.1", got)
	}
	select {
	case <-s.exited:
	default:
		t.Fatal("the server's init is still running")
	}
}

func TestReturnRecordsServerThatDidNotShutDownInTime(t *testing.T) {
	ca := newShutCA(t, "borrower-org")
	s := startLentServer(t, ca, `trap "" USR2; sleep 60`) // an init that ignores the request
	m, l := returner(t, s, ca, 1)
	got := m.shutdownServers(context.Background(), l)
	if len(got) != 1 || got[0].Outcome != ShutdownTimeout || !strings.Contains(got[0].Detail, "lender powers it off") {
		t.Fatalf("shutdown = %+v, want s1 timeout, left to the lender", got)
	}
}

func TestReturnDoesNotWaitForAKeeperThatRefusedIt(t *testing.T) {
	keeperTrusts, borrowerHas := newShutCA(t, "borrower-org"), newShutCA(t, "borrower-org")
	s := startLentServer(t, keeperTrusts, "exec sleep 60")
	m, l := returner(t, s, borrowerHas, 30)
	start := time.Now()
	got := m.shutdownServers(context.Background(), l)
	if len(got) != 1 || got[0].Outcome != ShutdownFailed || time.Since(start) > 10*time.Second {
		t.Fatalf("shutdown = %+v after %s, want s1 failed at once", got, time.Since(start))
	}
	select {
	case <-s.exited:
		t.Fatal("the keeper signalled init for a client of another CA")
	default:
	}
}

func TestReturnRefusesKeeperWithAnotherKey(t *testing.T) {
	ca := newShutCA(t, "borrower-org")
	s := startLentServer(t, ca, "exec sleep 60")
	m, l := returner(t, s, ca, 30)
	l.Lender.Servers[0].SPKIPin = strings.Repeat("0", 64)
	s.pin = l.Lender.Servers[0].SPKIPin // the gateway gave the address to that key, not the keeper's
	got := m.shutdownServers(context.Background(), l)
	if len(got) != 1 || got[0].Outcome != ShutdownFailed || !strings.Contains(got[0].Detail, "pin") {
		t.Fatalf("shutdown = %+v, want s1 failed on the key pin", got)
	}
}

func TestKeeperClientCertMustChainToBorrowerCA(t *testing.T) {
	ca, other := newShutCA(t, "borrower-org"), newShutCA(t, "borrower-org")
	dir := t.TempDir()
	cf, kf := other.writePair(t, dir, "client")
	_, err := keeperClientCert(Config{KeeperClientCert: cf, KeeperClientKey: kf, BorrowerCA: "ca.pem"}, ca.pem())
	if err == nil || !strings.Contains(err.Error(), "keeper_client_cert") {
		t.Fatalf("err = %v, want one naming keeper_client_cert", err)
	}
}

func TestReturnDoesNotAskOrWaitForAServerAlreadyGone(t *testing.T) {
	ca := newShutCA(t, "borrower-org")
	s := startLentServer(t, ca, "exec sleep 60")
	m, l := returner(t, s, ca, 30)
	s.init.Process.Kill()
	<-s.exited
	got := m.shutdownServers(context.Background(), l)
	if len(got) != 1 || got[0].Outcome != ShutdownNotThere || !got[0].Asked.IsZero() {
		t.Fatalf("shutdown = %+v, want s1 not-connected, never asked", got)
	}
}

func TestReturnSkipsShutdownWithoutKeeperClientCertificate(t *testing.T) {
	ca := newShutCA(t, "borrower-org")
	s := startLentServer(t, ca, "exec sleep 60")
	m, l := returner(t, s, ca, 30)
	m.keeperCert = nil
	got := m.shutdownServers(context.Background(), l)
	if len(got) != 1 || got[0].Outcome != ShutdownSkipped || !strings.Contains(got[0].Detail, "keeper_client_cert") {
		t.Fatalf("shutdown = %+v, want s1 skipped naming keeper_client_cert", got)
	}
	if !s.initAlive() {
		t.Fatal("init was signalled without a request")
	}
}

func (s *lentServer) initAlive() bool {
	select {
	case <-s.exited:
		return false
	case <-time.After(200 * time.Millisecond):
		return true
	}
}

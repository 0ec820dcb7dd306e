package keeper

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ferry/internal/netnstest"
	"ferry/ipsec/ike"
	"ferry/pki"
)

// gatewayClock is the gateway's clock for certificate checks: real time
// moved forward by ahead, so that a certificate can expire in a test.
type gatewayClock struct{ ahead atomic.Int64 }

func (c *gatewayClock) now() time.Time { return time.Now().Add(time.Duration(c.ahead.Load())) }

// logWatch is a log sink that signals when a line containing want is
// written.
type logWatch struct {
	mu   sync.Mutex
	want string
	seen chan struct{}
}

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen != nil && strings.Contains(string(p), w.want) {
		close(w.seen)
		w.seen = nil
	}
	return len(p), nil
}

// await returns a channel closed at the next line containing want.
func (w *logWatch) await(want string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.want, w.seen = want, make(chan struct{})
	return w.seen
}

// lenderGateway is the lent server's namespace and a ferry gateway's,
// the gateway trusting the lender CA for its peers (one-time
// certificates) and checking their validity with clock; its own
// certificate is from the borrower CA the keeper's state carries.
func lenderGateway(t *testing.T, l *lentLease, clock *gatewayClock, log *logWatch) (srv, gw *netnstest.NS, id *ike.InitiatorState, gd *ike.Daemon) {
	srv, gw = netnstest.New(t, "renew-srv"), netnstest.New(t, "renew-gw")
	netnstest.Veth(t, netnstest.End{NS: srv, Name: "rnv0", MTU: 1500, Addr: netip.PrefixFrom(serverOuter, 24)},
		netnstest.End{NS: gw, Name: "rnv1", Addr: netip.PrefixFrom(gwOuter, 24)})
	borrower, err := pki.NewCA("borrower CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gk, gc, err := borrower.Issue(pki.Identity{CommonName: "gateway"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	lenderPool := x509.NewCertPool()
	lenderPool.AddCert(l.ca.Cert)
	gd = startGateway(t, gw, "rngw0", ike.Config{Certs: []*x509.Certificate{gc}, Key: gk, CAs: []*x509.Certificate{l.ca.Cert},
		Verifier: &pki.Verifier{Roots: lenderPool, Skew: 5 * time.Minute, Now: clock.now},
		Log:      slog.New(slog.NewTextHandler(log, nil))})
	return srv, gw, &ike.InitiatorState{Gateway: gwOuter, VirtualIP: true, ForceEncap: true,
		Key: l.key, Certs: []*x509.Certificate{l.cert}, CAs: []*x509.Certificate{borrower.Cert}}, gd
}

// A week-long lease in miniature. The keeper holds the tunnel with the
// enrolled certificate; the borrower extends the lease and the keeper
// picks up the renewed certificate without touching the tunnel, and
// serves it on the shutdown listener. Past that certificate's end a
// reconnect is refused at the gateway; once the lease is extended again
// the keeper renews and the reconnect authenticates with the new one.
func TestKeeperRenewsItsCertificateAndReconnectsWithIt(t *testing.T) {
	l := newLentLease(t)
	clock, glog := &gatewayClock{}, &logWatch{}
	srv, gw, id, gd := lenderGateway(t, l, clock, glog)
	k, _ := runKeeper(t, srv, Options{Tunnel: id, Listen: "127.0.0.1:0", Mountinfo: "/proc/self/mountinfo",
		ShutdownListen: ":7071", PowerOff: PowerOff{Signal: "SIGUSR2"},
		Renewal: &Renewal{LenderURL: l.url, Pin: l.pin, Every: time.Second, RetryMin: time.Second, RetryMax: time.Second}})
	first := waitTunnel(t, k, func(s *TunnelStatus) bool { return s.Up })

	// First extension, tunnel up: renewed in place.
	mid := l.extend(t, time.Hour)
	st := waitCert(t, k, func(c *CertStatus) bool { return c.Renewals == 1 })
	if st.Certificate.NotAfter != mid.UTC().Format(time.RFC3339) || st.Certificate.LastRenewalResult != "renewed" {
		t.Fatalf("certificate status after the first extension: %+v; want renewed until %s", st.Certificate, mid)
	}
	if s := st.Tunnel; !s.Up || s.Since != first.Since || s.Reconnects != 0 {
		t.Fatalf("tunnel after the renewal: %+v; want the same connection, up (since %s)", s, first.Since)
	}
	var served string
	gw.Do(t, func() { served = servedSerial(t, net.JoinHostPort(first.VirtualIP, "7071")) })
	if served != st.Certificate.Serial {
		t.Fatalf("shutdown listener serves serial %s, want the renewed %s", served, st.Certificate.Serial)
	}

	// The gateway's clock passes that certificate's end: the tunnel is
	// dropped and the reconnect is refused, its certificate expired.
	clock.ahead.Store(int64(time.Until(mid) + 30*time.Minute))
	refused := glog.await("expired")
	gd.DeleteAll(t.Context())
	select {
	case <-refused:
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not refuse a reconnect with an expired certificate")
	}

	// Second extension: the keeper renews and the reconnect authenticates.
	end := l.extend(t, 48*time.Hour)
	st = waitCert(t, k, func(c *CertStatus) bool { return c.Renewals == 2 })
	if st.Certificate.NotAfter != end.UTC().Format(time.RFC3339) {
		t.Fatalf("certificate status after the second extension: %+v; want until %s", st.Certificate, end)
	}
	again := waitTunnel(t, k, func(s *TunnelStatus) bool { return s.Up && s.Reconnects >= 1 })
	if again.Since == first.Since {
		t.Fatalf("tunnel status %+v: want a new connection", again)
	}
	sas := gd.Status()
	if len(sas) != 1 || sas[0].State != "established" {
		t.Fatalf("gateway SAs after the reconnect: %+v", sas)
	}
}

// waitCert polls the keeper's status until its certificate part
// satisfies ok.
func waitCert(t *testing.T, k *Keeper, ok func(*CertStatus) bool) *Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := k.Status()
		if err != nil {
			t.Fatal(err)
		}
		if st.Certificate != nil && ok(st.Certificate) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("keeper certificate status %+v", st.Certificate)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// servedSerial is the serial of the certificate a TLS server at addr
// presents (the handshake then fails for want of a client certificate,
// which does not matter here).
func servedSerial(t *testing.T, addr string) string {
	t.Helper()
	var serial string
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			serial = c.SerialNumber.Text(16)
			return errors.New("seen")
		}}
	for range 20 {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, cfg)
		if err == nil {
			c.Close()
		}
		if serial != "" {
			return serial
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no TLS server certificate from %s", addr)
	return ""
}

package ike

import (
	"context"
	"crypto"
	"crypto/x509"
	"net/netip"
	"testing"
	"time"

	"ferry/ipsec/authz"
	"ferry/ipsec/dataplane/dataplanetest"
	"ferry/pki"
)

// loopback is a gateway and initiators on loopback with null data
// planes: IKE alone, fast, no namespaces.
type loopback struct {
	ca         *pki.CA
	allow      *authz.List
	gw         *Daemon
	gwCfg      Config
	port, natP uint16 // the gateway's ports 500 and 4500
}

func (lb *loopback) issue(t *testing.T, cn string) ([]*x509.Certificate, crypto.Signer, string) {
	t.Helper()
	k, c, err := lb.ca.Issue(pki.Identity{CommonName: cn}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := pki.Pin(k.Public())
	return []*x509.Certificate{c}, k, pin
}

// newLoopback starts a gateway like `ferry gateway`'s (forced
// encapsulation, allow list, pool); mod adjusts its configuration.
func newLoopback(t *testing.T, mod func(*Config)) *loopback {
	t.Helper()
	ca, err := pki.NewCA("loopback CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	lb := &loopback{ca: ca, allow: authz.New(testLog(t, "authz"), nil)}
	gc, gk, _ := lb.issue(t, "gw")
	pool, _ := NewPool(netip.MustParsePrefix("10.37.200.0/24"))
	lb.gwCfg = Config{Local: netip.MustParseAddr("127.0.0.1"), Certs: gc, Key: gk, CAs: []*x509.Certificate{ca.Cert},
		Authorizer: lb.allow, Pool: pool, ForceEncap: true, LocalSubnets: []netip.Prefix{netip.MustParsePrefix("10.37.2.0/24")},
		Log: testLog(t, "gw"), Backoff: Backoff{Base: 200 * time.Millisecond, Max: time.Second, Tries: 6}, // patient: the machine may be loaded
		DataPlane: dataplanetest.NewNull()}
	if mod != nil {
		mod(&lb.gwCfg)
	}
	c500, c4500 := udp(t), udp(t)
	lb.port, lb.natP = port(c500), port(c4500)
	lb.gw = runDaemon(t, lb.gwCfg, c500, c4500)
	lb.allow.SetRevoker(lb.gw)
	return lb
}

// initiator starts an initiator with a fresh key for cn, listed on the
// allow list or not; it sends IKE_SA_INIT from one ephemeral port and,
// once encapsulation is on, everything else from another, as every
// initiator moving to port 4500 does.
func (lb *loopback) initiator(t *testing.T, cn string, listed bool) (*Daemon, string) {
	t.Helper()
	c, k, pin := lb.issue(t, cn)
	if listed {
		lb.allow.Add(authz.Entry{Pin: pin, Lease: cn})
	}
	cfg := Config{Local: netip.MustParseAddr("127.0.0.1"), Port: lb.port, NATPort: lb.natP, Certs: c, Key: k,
		CAs: []*x509.Certificate{lb.ca.Cert}, Log: testLog(t, cn), Backoff: lb.gwCfg.Backoff,
		DataPlane: dataplanetest.NewNull()}
	return runDaemon(t, cfg, udp(t), udp(t)), pin
}

func (lb *loopback) connect(d *Daemon) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return d.Connect(ctx, Target{Gateway: netip.MustParseAddr("127.0.0.1"), VirtualIP: true})
}

func (lb *loopback) halfOpen() int {
	lb.gw.mu.Lock()
	defer lb.gw.mu.Unlock()
	return len(lb.gw.halfOpen)
}

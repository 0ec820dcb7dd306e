package ike

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"ferry/internal/netnstest"
	"ferry/ipsec/authz"
	"ferry/ipsec/dataplane"
	"ferry/pki"
)

// Lab addresses (subnet 10.33 is this package's in the shared lab).
var (
	initOuter = netip.MustParseAddr("10.33.0.1")
	gwOuter   = netip.MustParseAddr("10.33.0.2")
	gwInner   = netip.MustParsePrefix("10.33.2.1/32")
	gwSubnet  = netip.MustParsePrefix("10.33.2.0/24")
	vipPool   = netip.MustParsePrefix("10.33.200.0/24")
)

// labNet is one lab's addresses in subnet 10.N: the original tests use
// 10.33, the hardening tests (issue 3 follow-up) 10.36.
type labNet struct {
	initOuter, gwOuter         netip.Addr
	gwInner, gwSubnet, vipPool netip.Prefix
}

func labNetOf(n int) labNet {
	a := func(f string) string { return fmt.Sprintf(f, n) }
	return labNet{initOuter: netip.MustParseAddr(a("10.%d.0.1")), gwOuter: netip.MustParseAddr(a("10.%d.0.2")),
		gwInner: netip.MustParsePrefix(a("10.%d.2.1/32")), gwSubnet: netip.MustParsePrefix(a("10.%d.2.0/24")),
		vipPool: netip.MustParsePrefix(a("10.%d.200.0/24"))}
}

// pair is two namespaces joined by a veth: the initiator's (10.33.0.1)
// and the gateway's (10.33.0.2).
type pair struct{ a, b *netnstest.NS }

func newPair(t testing.TB, n labNet) *pair {
	t.Helper()
	p := &pair{a: netnstest.New(t, "ike"), b: netnstest.New(t, "ike")}
	netnstest.Veth(t, netnstest.End{NS: p.a, Name: "ikev0", MTU: 1500, Addr: netip.PrefixFrom(n.initOuter, 24)},
		netnstest.End{NS: p.b, Name: "ikev1", Addr: netip.PrefixFrom(n.gwOuter, 24)})
	return p
}

// creds is a CA and what it issued.
type creds struct {
	ca *pki.CA
}

func newCreds(t testing.TB) *creds {
	ca, err := pki.NewCA("ferry test CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &creds{ca: ca}
}

func (c *creds) issue(t testing.TB, cn string, validity time.Duration) (crypto.Signer, *x509.Certificate, string) {
	key, cert, err := c.ca.Issue(pki.Identity{CommonName: cn}, pki.ECDSAP256, validity)
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := pki.Pin(key.Public())
	return key, cert, pin
}

// endpoint is a daemon with a user-space ESP plane in one namespace.
type endpoint struct {
	d     *Daemon
	plane *Userspace
	ns    *netnstest.NS
	stop  context.CancelFunc
	done  chan error
	// closers free the TUN device and router once the daemon is gone.
	closers []func() error
}

func testLog(t testing.TB, who string) *slog.Logger {
	if os.Getenv("FERRY_IKE_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("who", who)
	}
	return slog.New(slog.DiscardHandler)
}

// startEndpoint opens TUN and sockets in ns and runs a daemon there.
// innerAddr, if valid, is put on the TUN device (the gateway's own inner
// address).
func startEndpoint(t testing.TB, ns *netnstest.NS, cfg Config, innerAddr netip.Prefix) *endpoint {
	t.Helper()
	return startWrapped(t, ns, cfg, innerAddr, 1400, func(u *Userspace) dataplane.DataPlane { return u })
}

// startWrapped is startEndpoint with a TUN device of mtu bytes (the
// product's is 1400) and the daemon seeing wrap(plane) as its data plane
// (it must still take ESP input, as *Userspace does).
func startWrapped(t testing.TB, ns *netnstest.NS, cfg Config, innerAddr netip.Prefix, mtu int, wrap func(*Userspace) dataplane.DataPlane) *endpoint {
	t.Helper()
	e := &endpoint{ns: ns, done: make(chan error, 1)}
	var err error
	ns.Do(t, func() {
		var us *Userspace
		if us, err = OpenUserspace(cfg.Local, 4500, "ike0", mtu, innerAddr, cfg.Log); err != nil {
			return
		}
		e.plane = us
		cfg.DataPlane, cfg.NATSocket, cfg.ForceEncap = wrap(us), us.Socket, true
		if e.d, err = New(cfg); err != nil {
			us.Close()
			return
		}
		e.closers = append(e.closers, us.Close)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	go e.plane.Run(ctx)
	go func() { e.done <- e.d.Run(ctx) }()
	t.Cleanup(e.halt)
	return e
}

func (e *endpoint) halt() {
	if e.stop != nil {
		e.stop()
		<-e.done
		for _, c := range e.closers {
			c()
		}
		e.stop = nil
	}
}

// lab is a gateway with an allow list and an initiator, not yet connected.
type lab struct {
	n       labNet
	p       *pair
	creds   *creds
	allow   *authz.List
	gw      *endpoint
	gwCfg   Config
	initCfg Config
	initPin string
}

func newLab(t testing.TB) *lab { return newLabOn(t, 33) }

// newLabOn is newLab in subnet 10.n.
func newLabOn(t testing.TB, n int) *lab {
	t.Helper()
	l := &lab{n: labNetOf(n), creds: newCreds(t)}
	l.p = newPair(t, l.n)
	gk, gc, _ := l.creds.issue(t, "gateway", time.Hour)
	ik, ic, ipin := l.creds.issue(t, "lease-1", time.Hour)
	l.initPin = ipin
	l.allow = authz.New(testLog(t, "authz"), nil)
	l.allow.Add(authz.Entry{Pin: ipin, Lease: "lease-1"})
	pool, _ := NewPool(l.n.vipPool)
	l.gwCfg = Config{Local: l.n.gwOuter, Certs: []*x509.Certificate{gc}, Key: gk, CAs: []*x509.Certificate{l.creds.ca.Cert},
		Authorizer: l.allow, Pool: pool, LocalSubnets: []netip.Prefix{l.n.gwSubnet}, Log: testLog(t, "gw"),
		Backoff: Backoff{Base: 200 * time.Millisecond, Max: time.Second, Tries: 4}}
	l.initCfg = Config{Local: l.n.initOuter, Certs: []*x509.Certificate{ic}, Key: ik, CAs: []*x509.Certificate{l.creds.ca.Cert},
		Log: testLog(t, "init"), Backoff: Backoff{Base: 200 * time.Millisecond, Max: time.Second, Tries: 4}}
	return l
}

func (l *lab) startGateway(t testing.TB) {
	l.gw = startEndpoint(t, l.p.b, l.gwCfg, l.n.gwInner)
	l.allow.SetRevoker(l.gw.d)
}

func (l *lab) connect(t testing.TB, cfg Config) (*endpoint, error) {
	e := startEndpoint(t, l.p.a, cfg, netip.Prefix{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e, e.d.Connect(ctx, Target{Gateway: l.n.gwOuter, RemoteSubnets: []netip.Prefix{l.n.gwSubnet}, VirtualIP: true})
}

func authzEntry(pin string) authz.Entry { return authz.Entry{Pin: pin, Lease: "lease-x"} }

// addLoAddr puts p on the namespace's loopback: the gateway's own inner
// address when strongSwan (which has no address of its own) is the gateway.
func addLoAddr(t testing.TB, p netip.Prefix) {
	t.Helper()
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}})
	}
	if err != nil {
		t.Fatalf("address %s on lo: %v", p, err)
	}
}

func setLink(t testing.TB, name string, up bool) {
	l, err := netlink.LinkByName(name)
	if err == nil && up {
		err = netlink.LinkSetUp(l)
	} else if err == nil {
		err = netlink.LinkSetDown(l)
	}
	if err != nil {
		t.Fatalf("link %s up=%v: %v", name, up, err)
	}
}

package keeper

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"ferry/internal/netnstest"
	"ferry/ipsec/ike"
	"ferry/ipsec/xfrm"
	"ferry/pki"
)

// Lab addresses: subnet 10.50 is the tunnel keeper's in the shared lab.
var (
	serverOuter = netip.MustParseAddr("10.50.0.1")
	gwOuter     = netip.MustParseAddr("10.50.0.2")
	gwInner     = netip.MustParsePrefix("10.50.2.1/32")
	gwSubnet    = netip.MustParsePrefix("10.50.2.0/24")
	vipPool     = netip.MustParsePrefix("10.50.200.0/24")
)

// lentServerAndGateway is two namespaces joined by a veth: the lent
// server's (10.50.0.1) and a ferry gateway's (10.50.0.2, borrower subnet
// 10.50.2.0/24 behind it), the gateway running. It returns both
// namespaces and the identity the server's keeper gets.
func lentServerAndGateway(t *testing.T) (srv, gw *netnstest.NS, id *ike.InitiatorState) {
	srv, gw, id, _ = lentServerAndGatewayDaemon(t)
	return srv, gw, id
}

// lentServerAndGatewayDaemon is lentServerAndGateway, also returning the
// gateway's daemon.
func lentServerAndGatewayDaemon(t *testing.T) (srv, gw *netnstest.NS, id *ike.InitiatorState, gd *ike.Daemon) {
	srv, gw = netnstest.New(t, "keeper-srv"), netnstest.New(t, "keeper-gw")
	netnstest.Veth(t, netnstest.End{NS: srv, Name: "kpv0", MTU: 1500, Addr: netip.PrefixFrom(serverOuter, 24)},
		netnstest.End{NS: gw, Name: "kpv1", Addr: netip.PrefixFrom(gwOuter, 24)})
	ca, err := pki.NewCA("keeper test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gk, gc, err := ca.Issue(pki.Identity{CommonName: "gateway"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sk, sc, err := ca.Issue(pki.Identity{CommonName: "L1/s1"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	d := startGateway(t, gw, "kpgw0", ike.Config{Certs: []*x509.Certificate{gc}, Key: gk, CAs: []*x509.Certificate{ca.Cert}})
	return srv, gw, &ike.InitiatorState{Gateway: gwOuter, VirtualIP: true, ForceEncap: true,
		Key: sk, Certs: []*x509.Certificate{sc}, CAs: []*x509.Certificate{ca.Cert}}, d
}

// startGateway runs a ferry gateway at gwOuter in gw, user-space ESP on
// the TUN device tun, handing out vipPool and routing gwSubnet, with cfg's
// identity, trust and log, until the test ends. The TUN device and sockets
// are made in gw's namespace; the daemon and data plane then run on
// goroutines of their own.
func startGateway(t *testing.T, gw *netnstest.NS, tun string, cfg ike.Config) *ike.Daemon {
	t.Helper()
	var us *ike.Userspace
	var d *ike.Daemon
	var err error
	gw.Do(t, func() {
		if us, err = ike.OpenUserspace(gwOuter, 4500, tun, 1400, gwInner, slog.New(slog.DiscardHandler)); err != nil {
			return
		}
		cfg.Local, cfg.LocalSubnets, cfg.DataPlane, cfg.NATSocket, cfg.ForceEncap = gwOuter, []netip.Prefix{gwSubnet}, us, us.Socket, true
		cfg.Pool, _ = ike.NewPool(vipPool)
		if d, err = ike.New(cfg); err != nil {
			us.Close()
		}
	})
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go us.Run(ctx)
	go func() {
		defer us.Close()
		d.Run(ctx)
	}()
	return d
}

func TestKeeperReportsTunnelUpAndCarriesTraffic(t *testing.T) {
	srv, gw, id := lentServerAndGateway(t)
	k, event := runKeeper(t, srv, Options{Tunnel: id, Listen: "127.0.0.1:0", Mountinfo: "/proc/self/mountinfo"})
	// auto: the kernel plane where the namespace's kernel has ESP, else
	// user-space ESP.
	want := DataPlaneUser
	srv.Do(t, func() {
		if probeESP() == nil {
			want = DataPlaneKernel
		}
	})
	up, ok := strings.CutPrefix(strings.TrimSpace(event), "tunnel up ")
	vip, plane, _ := strings.Cut(up, " ")
	if a, err := netip.ParseAddr(vip); !ok || err != nil || !vipPool.Contains(a) || DataPlane(plane) != want {
		t.Fatalf("keeper said %q, want 'tunnel up', an address of %s and %s", event, vipPool, want)
	}
	st, err := k.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Tunnel == nil || !st.Tunnel.Up || st.Tunnel.VirtualIP != vip || st.Tunnel.Children != 1 || st.Tunnel.DataPlane != want {
		t.Fatalf("status tunnel = %+v, want up with %s, one CHILD_SA and data plane %s", st.Tunnel, vip, want)
	}
	// A byte stream from the server to the borrower subnet goes through it.
	var ln net.Listener
	gw.Do(t, func() { ln, err = net.Listen("tcp", gwInner.Addr().String()+":7071") })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.WriteString(c, "through the tunnel\n")
			c.Close()
		}
	}()
	var got string
	srv.Do(t, func() {
		c, err := net.DialTimeout("tcp", gwInner.Addr().String()+":7071", 10*time.Second)
		if err != nil {
			t.Errorf("dial the borrower subnet from the lent server: %v", err)
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, _ = bufio.NewReader(c).ReadString('\n')
		if la := c.LocalAddr().(*net.TCPAddr).IP.String(); la != vip {
			t.Errorf("connection from %s, want the virtual IP %s", la, vip)
		}
	})
	if got != "through the tunnel\n" {
		t.Fatalf("read %q through the tunnel", got)
	}
}

func TestTunnelRefusesKernelPlaneWhereKernelHasNoESP(t *testing.T) {
	ns := netnstest.New(t, "keeper-noesp")
	var err error
	ns.Do(t, func() {
		if probeESP() == nil {
			t.Skip("this kernel has ESP")
		}
		lo, _ := netlink.LinkByName("lo")
		netlink.LinkSetUp(lo)
		st := &ike.InitiatorState{Gateway: netip.MustParseAddr("127.0.0.2"), Local: netip.MustParseAddr("127.0.0.1")}
		var tun *Tunnel
		tun, err = OpenTunnel(context.Background(), st, DataPlaneKernel, slog.New(slog.DiscardHandler))
		if err == nil {
			tun.Close(context.Background())
		}
	})
	if !errors.Is(err, xfrm.ErrNoESP) || !strings.Contains(err.Error(), "dataplane=kernel") {
		t.Fatalf("OpenTunnel(dataplane=kernel) without ESP = %v, want an error naming the choice and wrapping xfrm.ErrNoESP", err)
	}
}

// The status tells the truth after a reconnect: since moves, the
// reconnect is counted with its reason, and up means the data path works.
func TestKeeperStatusFollowsReconnect(t *testing.T) {
	srv, _, id, gd := lentServerAndGatewayDaemon(t)
	k, _ := runKeeper(t, srv, Options{Tunnel: id, Listen: "127.0.0.1:0", Mountinfo: "/proc/self/mountinfo"})
	first := waitTunnel(t, k, func(s *TunnelStatus) bool { return s.Up })
	if first.Since == "" || first.Reconnects != 0 || first.DataPath == "" || first.NextRekey == "" {
		t.Fatalf("status of a fresh tunnel %+v; want since, no reconnect, a data path and the next rekey", first)
	}
	time.Sleep(1100 * time.Millisecond) // since has a resolution of a second
	gd.DeleteAll(t.Context())           // the gateway drops the tunnel; the keeper reconnects
	again := waitTunnel(t, k, func(s *TunnelStatus) bool { return s.Up && s.Reconnects == 1 })
	if again.Since <= first.Since || !strings.Contains(again.LastReconnectReason, "peer deleted") {
		t.Fatalf("after a reconnect: since %s (before %s), reason %q; want since moved and the reason the gateway gave",
			again.Since, first.Since, again.LastReconnectReason)
	}
}

// runKeeper runs a keeper with opt in the lent server's namespace, PID 1's
// end of its control channel held by the test, until the test ends; it
// returns the keeper and its first event.
func runKeeper(t *testing.T, srv *netnstest.NS, opt Options) (*Keeper, string) {
	t.Helper()
	ours, theirs := net.Pipe()
	opt.Control = theirs
	k := New(opt, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Do(t, func() { k.Run(ctx) })
	}()
	// Closing our end after the cancel frees a keeper blocked writing an
	// event nobody reads.
	t.Cleanup(func() { cancel(); ours.Close(); <-done })
	ours.SetReadDeadline(time.Now().Add(30 * time.Second))
	event, err := bufio.NewReader(ours).ReadString('\n')
	if err != nil {
		t.Fatalf("no event from the keeper: %v", err)
	}
	return k, event
}

func waitTunnel(t *testing.T, k *Keeper, ok func(*TunnelStatus) bool) TunnelStatus {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := k.Status()
		if err != nil {
			t.Fatal(err)
		}
		if st.Tunnel != nil && ok(st.Tunnel) {
			return *st.Tunnel
		}
		if time.Now().After(deadline) {
			t.Fatalf("keeper tunnel status %+v", st.Tunnel)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The tunnel stays up in the status when the gateway, not the keeper,
// rekeyed the IKE SA (the keeper is then that SA's responder).
func TestKeeperStatusUpAfterGatewayRekeyedIKESA(t *testing.T) {
	srv, _, id, gd := lentServerAndGatewayDaemon(t)
	k, _ := runKeeper(t, srv, Options{Tunnel: id, Listen: "127.0.0.1:0", Mountinfo: "/proc/self/mountinfo"})
	first := waitTunnel(t, k, func(s *TunnelStatus) bool { return s.Up })
	before := gd.Status()[0].SPIi
	if n := gd.RekeyIKE(); n != 1 {
		t.Fatalf("gateway started %d IKE rekeys", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for st := gd.Status(); len(st) != 1 || st[0].SPIi == before; st = gd.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("gateway SAs %+v 5 s after its IKE rekey; want one new one", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		st, err := k.Status()
		if err != nil {
			t.Fatal(err)
		}
		s := st.Tunnel
		if s.SAs == 1 && s.Up && s.Since == first.Since && s.Reconnects == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("keeper status 5 s after the gateway rekeyed the IKE SA: %+v; want one SA, up, the same connection", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

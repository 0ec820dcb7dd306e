package ike

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"ferry/internal/netnstest"
	"ferry/ipsec/authz"
)

// NAT lab (subnet 10.N, 10.35 for the original tests): initiator
// 10.N.1.2 -- 10.N.1.1 router 10.N.0.1 -- 10.N.0.2 gateway. The router
// masquerades what leaves towards the gateway; the gateway has no route
// back to 10.N.1.0/24, so nothing gets through without the translation.
type natNet struct {
	ini, rtrIn, rtrOut, gw netip.Addr
	gwInner, gwNet, pool   netip.Prefix
}

func natNetOf(n int) natNet {
	a := func(f string) netip.Addr { return netip.MustParseAddr(fmt.Sprintf(f, n)) }
	p := func(f string) netip.Prefix { return netip.MustParsePrefix(fmt.Sprintf(f, n)) }
	return natNet{ini: a("10.%d.1.2"), rtrIn: a("10.%d.1.1"), rtrOut: a("10.%d.0.1"), gw: a("10.%d.0.2"),
		gwInner: p("10.%d.2.1/32"), gwNet: p("10.%d.2.0/24"), pool: p("10.%d.200.0/24")}
}

// natRuleset counts NAT-T keepalives (one byte 0xFF to port 4500) and ESP
// (a non-zero first word) going out, and masquerades to ports in PORTS.
const natRuleset = `table ip ferrynat {
	counter keepalive {}
	counter encap {}
	chain counting {
		type filter hook forward priority 0; policy accept;
		iifname "natv1" udp dport 4500 udp length 9 @th,64,8 0xff counter name keepalive
		iifname "natv1" udp dport 4500 @th,64,32 != 0 counter name encap
	}
	chain outbound {
		type nat hook postrouting priority 100; policy accept;
		oifname "natv2" meta l4proto udp masquerade to :PORTS
		oifname "natv2" masquerade
	}
}
`

type natLab struct {
	n          natNet
	router     *netnstest.NS
	ini, gw    *endpoint
	iniCfg     Config
	gwCfg      Config
	keepalives time.Duration
}

func newNATLab(t *testing.T) *natLab { return newNATLabOn(t, 35) }

// newNATLabOn is newNATLab in subnet 10.n.
func newNATLabOn(t *testing.T, n int) *natLab {
	t.Helper()
	netnstest.Require(t)
	for _, tool := range []string{"nft", "conntrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/ci-deps.sh installs nftables, conntrack)", tool)
		}
	}
	l := &natLab{n: natNetOf(n)}
	ini, gw := netnstest.New(t, "ikenat"), netnstest.New(t, "ikenat")
	l.router = netnstest.New(t, "ikenat")
	// natv0 (initiator) -- natv1 (router) ; natv2 (router) -- natv3 (gateway)
	netnstest.Veth(t, netnstest.End{NS: l.router, Name: "natv1", Addr: netip.PrefixFrom(l.n.rtrIn, 24)},
		netnstest.End{NS: ini, Name: "natv0", Addr: netip.PrefixFrom(l.n.ini, 24)})
	netnstest.Veth(t, netnstest.End{NS: l.router, Name: "natv2", Addr: netip.PrefixFrom(l.n.rtrOut, 24)},
		netnstest.End{NS: gw, Name: "natv3", Addr: netip.PrefixFrom(l.n.gw, 24)})
	ini.Do(t, func() {
		link, _ := netlink.LinkByName("natv0")
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: l.n.rtrIn.AsSlice()}); err != nil {
			t.Fatalf("default route: %v", err)
		}
	})
	l.router.Run(t, "", "sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.setNAT(t, "20000-20999")

	creds := newCreds(t)
	gk, gc, _ := creds.issue(t, "gateway", time.Hour)
	ik, ic, ipin := creds.issue(t, "lease-nat", time.Hour)
	allow := authz.New(testLog(t, "authz"), nil)
	allow.Add(authz.Entry{Pin: ipin, Lease: "lease-nat"})
	pool, _ := NewPool(l.n.pool)
	backoff := Backoff{Base: 200 * time.Millisecond, Max: time.Second, Tries: 5}
	l.keepalives = 200 * time.Millisecond
	l.gwCfg = Config{Local: l.n.gw, Certs: []*x509.Certificate{gc}, Key: gk, CAs: []*x509.Certificate{creds.ca.Cert},
		Authorizer: allow, Pool: pool, LocalSubnets: []netip.Prefix{l.n.gwNet}, Log: testLog(t, "gw"), Backoff: backoff}
	l.iniCfg = Config{Local: l.n.ini, Certs: []*x509.Certificate{ic}, Key: ik, CAs: []*x509.Certificate{creds.ca.Cert},
		Log: testLog(t, "init"), Backoff: backoff, Keepalive: l.keepalives, DPD: time.Second}
	l.gw = startNATEndpoint(t, gw, l.gwCfg, l.n.gwInner)
	l.ini = startNATEndpoint(t, ini, l.iniCfg, netip.Prefix{})
	return l
}

// setNAT (re)loads the router's ruleset, masquerading UDP to ports.
func (l *natLab) setNAT(t *testing.T, ports string) {
	t.Helper()
	// One transaction: a flush of its own would let packets through
	// untranslated in between, and IKE would follow them.
	l.router.Run(t, "flush ruleset\n"+strings.ReplaceAll(natRuleset, "PORTS", ports), "nft", "-f", "-")
}

var counterRE = regexp.MustCompile(`packets (\d+) bytes (\d+)`)

// counter reads one of the router's named counters: packets and bytes.
// Bytes are what to compare for bulk data: UDP GSO super-datagrams cross
// the router as one packet.
func (l *natLab) counter(t *testing.T, name string) (packets, bytes int) {
	t.Helper()
	m := counterRE.FindStringSubmatch(l.router.Run(t, "", "nft", "list", "counter", "ip", "ferrynat", name))
	if m == nil {
		t.Fatalf("counter %s: no packets/bytes fields", name)
	}
	packets, _ = strconv.Atoi(m[1])
	bytes, _ = strconv.Atoi(m[2])
	return packets, bytes
}

// startNATEndpoint is startEndpoint without forced encapsulation: whether
// to float to 4500 is up to NAT detection.
func startNATEndpoint(t testing.TB, ns *netnstest.NS, cfg Config, inner netip.Prefix) *endpoint {
	t.Helper()
	e := &endpoint{ns: ns, done: make(chan error, 1)}
	var err error
	ns.Do(t, func() {
		var us *Userspace
		if us, err = OpenUserspace(cfg.Local, 4500, "ike0", 1400, inner, cfg.Log); err != nil {
			return
		}
		e.plane = us
		cfg.DataPlane, cfg.NATSocket = us, us.Socket
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

// natTransfer sends n bytes from the initiator to the gateway's inner
// address through the tunnel behind the NAT and checks them.
func natTransfer(t *testing.T, l *natLab, n int) {
	t.Helper()
	sendThrough(t, l.ini.ns, l.gw.ns, l.n.gwInner.Addr(), 7035, n, nil)
}

func (l *natLab) connect(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.ini.d.Connect(ctx, Target{Gateway: l.n.gw, RemoteSubnets: []netip.Prefix{l.n.gwNet}, VirtualIP: true}); err != nil {
		t.Fatalf("connect through the NAT: %v", err)
	}
}

// natView is what each side's IKE SA says about NAT.
func natView(e *endpoint) (remote netip.AddrPort, natT, behindNAT bool) {
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	for _, sa := range e.d.sas {
		if sa.st == stEstablished {
			return sa.remote, sa.natT, sa.behindNAT
		}
	}
	return netip.AddrPort{}, false, false
}

func inPorts(p uint16, lo, hi uint16) bool { return p >= lo && p <= hi }

func TestNATIsDetectedAndTunnelFloatsTo4500(t *testing.T) {
	l := newNATLab(t)
	l.connect(t)
	iRemote, iNATT, iBehind := natView(l.ini)
	if iRemote != netip.AddrPortFrom(l.n.gw, 4500) || !iNATT || !iBehind {
		t.Fatalf("initiator: remote %v natT=%v behindNAT=%v; want %v:4500, floated, and its NAT detected", iRemote, iNATT, iBehind, l.n.gw)
	}
	gRemote, gNATT, gBehind := natView(l.gw)
	if gRemote.Addr() != l.n.rtrOut || !inPorts(gRemote.Port(), 20000, 20999) || !gNATT || gBehind {
		t.Fatalf("gateway: peer %v natT=%v behindNAT=%v; want the router's %v with a masqueraded port 20000-20999, floated, gateway itself not behind NAT",
			gRemote, gNATT, gBehind, l.n.rtrOut)
	}
	_, esp0 := l.counter(t, "encap")
	natTransfer(t, l, 1<<20)
	if _, esp := l.counter(t, "encap"); esp-esp0 < 1<<20 {
		t.Fatalf("1 MiB crossed the router as %d bytes of UDP-encapsulated ESP to port 4500; want all of it encapsulated", esp-esp0)
	}
}

func TestInitiatorBehindNATSendsKeepalivesWhileIdle(t *testing.T) {
	l := newNATLab(t)
	l.connect(t)
	before, _ := l.counter(t, "keepalive")
	idle := 2 * time.Second
	time.Sleep(idle)
	after, _ := l.counter(t, "keepalive")
	got := after - before
	// The behaviour: keepalives keep coming while the tunnel is idle, and
	// never more than one per interval. How many fewer than that a loaded
	// machine manages is timing, not behaviour, so the floor is only "more
	// than one".
	most := int(idle/l.keepalives) + 1
	if got < 2 || got > most {
		t.Fatalf("%d NAT-T keepalives in %v idle at a %v interval; want 2..%d", got, idle, l.keepalives, most)
	}
}

func TestTunnelSurvivesNATMappingChange(t *testing.T) {
	l := newNATLab(t)
	l.connect(t)
	natTransfer(t, l, 256<<10)
	// The NAT forgets the mapping and will use other ports from now on.
	l.setNAT(t, "21000-21999")
	l.router.Run(t, "", "conntrack", "-F")
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _, _ := natView(l.gw)
		if inPorts(r.Port(), 21000, 21999) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway still sends IKE to %v 10 s after the NAT mapping changed; want it to follow the initiator's authenticated DPD from the new port", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	natTransfer(t, l, 256<<10)
	if n := len(l.gw.d.Status()); n != 1 {
		t.Fatalf("gateway has %d IKE SAs after the NAT change; want the same one kept", n)
	}
}

// After the NAT's mapping changes, only the gateway sends ESP: the
// initiator's IKE liveness checks (authenticated, from the new port) are
// all the gateway has to learn the new mapping from. Subnet 10.36.
func TestGatewayESPFollowsNATChangeLearntFromIKE(t *testing.T) {
	l := newNATLabOn(t, 36)
	l.connect(t)
	natTransfer(t, l, 64<<10)
	vip := l.ini.d.Status()[0].VirtualIP
	var rx *net.UDPConn
	var err error
	l.ini.ns.Do(t, func() { rx, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(vip+":7036"))) })
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	l.setNAT(t, "21000-21999")
	l.router.Run(t, "", "conntrack", "-F")
	deadline := time.Now().Add(10 * time.Second)
	for r, _, _ := natView(l.gw); !inPorts(r.Port(), 21000, 21999); r, _, _ = natView(l.gw) {
		if time.Now().After(deadline) {
			t.Fatalf("gateway IKE still at %v 10 s after the NAT mapping changed", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var tx net.Conn
	l.gw.ns.Do(t, func() { tx, err = net.Dial("udp4", vip+":7036") })
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		rx.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := rx.ReadFromUDP(buf)
		if err != nil {
			got <- ""
			return
		}
		got <- string(buf[:n])
	}()
	for range 10 {
		tx.Write([]byte("gateway only"))
		time.Sleep(50 * time.Millisecond)
	}
	if s := <-got; s != "gateway only" {
		t.Fatalf("the initiator received %q from the gateway after the NAT change; want its datagrams to follow the mapping IKE learnt", s)
	}
}

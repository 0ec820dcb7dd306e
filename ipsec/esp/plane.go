package esp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"ferry/ipsec/dataplane"
)

// PacketWriter sends outer UDP datagrams; *net.UDPConn is one. The IKE
// daemon's port-4500 socket is meant to be shared this way.
type PacketWriter interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// Router changes the host's addresses and routes for the TUN device. A nil
// Router leaves the host alone (tests, or an operator who routes by hand).
type Router interface {
	AddAddr(p netip.Prefix) error
	DelAddr(p netip.Prefix) error
	AddRoute(p netip.Prefix) error
	DelRoute(p netip.Prefix) error
	// AddGuard makes packets to p fail (a prohibit route) once the
	// device's route to p is gone: when the device goes with the process
	// that holds it (exit, kill -9). DelGuard removes it.
	AddGuard(p netip.Prefix) error
	DelGuard(p netip.Prefix) error
}

// Config is what a Plane needs from its owner.
type Config struct {
	TUN    io.ReadWriter // one inner IPv4 packet per Read/Write
	Conn   PacketWriter  // the shared UDP 4500 socket
	Router Router        // may be nil
	MTU    int           // of the TUN device; 0 means 1400
	Log    *slog.Logger  // may be nil
}

// pair is one installed CHILD_SA.
type pair struct {
	in     *inbound
	out    *outbound
	routes []netip.Prefix
	vip    netip.Prefix
	timers []*time.Timer
	gen    uint64 // install order: after a rekey the newest SA sends
}

// tables is an immutable snapshot read by the packet paths without locks.
type tables struct {
	in     map[uint32]*inbound
	routes []route // longest prefix first
}

type route struct {
	prefix netip.Prefix
	out    *outbound
	gen    uint64
	waits  bool // deferred, an older SA sends meanwhile
}

// Plane is the user-space ESP data plane. It implements dataplane.DataPlane.
type Plane struct {
	cfg    Config
	log    *slog.Logger
	cnt    counters
	tab    atomic.Pointer[tables]
	expire chan dataplane.ExpireEvent

	mu    sync.Mutex
	pairs map[uint32]*pair // by inbound SPI
	// draining: inbound halves of SAs removed after a rekey, accepting
	// for DrainTime what the peer sent before it switched (Remove)
	draining map[uint32]*inbound
	outs     map[uint32]uint32
	refs     map[netip.Prefix]int // route reference counts
	addrs    map[netip.Prefix]int // address reference counts (virtual IPs, held addresses)
	// The lease's fail-closed state, released by Teardown only: one
	// reference on every route and virtual IP an SA ever had (so they
	// stay on the device, and packets with no SA reach the plane, which
	// drops them), and the guards (prohibit routes) under them.
	pinRoutes map[netip.Prefix]bool
	pinAddrs  map[netip.Prefix]bool
	guards    map[netip.Prefix]bool
	gen       uint64
	closed    bool
	gone      bool // Teardown ran

	noGSO atomic.Bool // the socket refused UDP GSO once

	isolated atomic.Pointer[[]netip.Prefix] // Isolate
}

// Isolate makes the plane drop every inner packet a peer sends to an
// address of ps, whatever its selectors allow (counted as DropPolicy).
// The gateway isolates its pool: a lent server has no business with
// another, so none reaches another through the gateway, even where the
// gateway's subnets (0.0.0.0/0, or a prefix around the pool) cover it.
func (p *Plane) Isolate(ps []netip.Prefix) {
	ps = slices.Clone(ps)
	p.isolated.Store(&ps)
}

var _ dataplane.DataPlane = (*Plane)(nil)

// New makes a Plane over an open TUN device and socket. Call Run to start
// the outbound path and ServeUDP on the socket for the inbound one.
func New(cfg Config) *Plane {
	if cfg.MTU == 0 {
		cfg.MTU = 1400
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Plane{cfg: cfg, log: log, expire: make(chan dataplane.ExpireEvent, 64),
		pairs: map[uint32]*pair{}, draining: map[uint32]*inbound{}, outs: map[uint32]uint32{}, refs: map[netip.Prefix]int{}, addrs: map[netip.Prefix]int{},
		pinRoutes: map[netip.Prefix]bool{}, pinAddrs: map[netip.Prefix]bool{}, guards: map[netip.Prefix]bool{}}
	p.tab.Store(&tables{in: map[uint32]*inbound{}})
	return p
}

// Stats returns the counters.
func (p *Plane) Stats() Stats { return p.cnt.snapshot() }

// Expire implements dataplane.DataPlane.
func (p *Plane) Expire() <-chan dataplane.ExpireEvent { return p.expire }

// BypassSocket is a no-op: user space sends IKE on the socket directly and
// no kernel policy exists to bypass.
func (p *Plane) BypassSocket(fd uintptr) error { return nil }

// Install implements dataplane.DataPlane.
func (p *Plane) Install(ctx context.Context, sa dataplane.ChildSA) error {
	if err := validate(sa); err != nil {
		return err
	}
	in, err := newInbound(sa)
	if err != nil {
		return err
	}
	out, err := newOutbound(sa)
	if err != nil {
		return err
	}
	in.life, out.life = &meter{lim: sa.Lifetime}, &meter{lim: sa.Lifetime}
	in.out, in.deferred = out, sa.Deferred
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("esp: install on a closed data plane")
	}
	if _, ok := p.pairs[sa.InSPI]; ok || p.draining[sa.InSPI] != nil {
		return fmt.Errorf("esp: inbound SPI %#x is already installed", sa.InSPI)
	}
	if _, ok := p.outs[sa.OutSPI]; ok {
		return fmt.Errorf("esp: outbound SPI %#x is already installed", sa.OutSPI)
	}
	p.gen++
	pr := &pair{in: in, out: out, routes: sa.TSRemote, vip: sa.VirtualIP, gen: p.gen}
	if err := p.addHostState(pr); err != nil {
		return err
	}
	p.pin(pr)
	if err := p.guard(sa.TSRemote, sa.Remote.Addr()); err != nil {
		p.log.Warn("esp: guarding remote selectors", "err", err)
	}
	p.pairs[sa.InSPI], p.outs[sa.OutSPI] = pr, sa.InSPI
	pr.timers = p.startTimers(sa)
	p.publish()
	p.log.Info("esp: SA installed", "in_spi", fmt.Sprintf("%#x", sa.InSPI), "out_spi", fmt.Sprintf("%#x", sa.OutSPI),
		"remote", sa.Remote, "ts_remote", sa.TSRemote, "replay_window", in.win.size, "esn", sa.ESN)
	return nil
}

func validate(sa dataplane.ChildSA) error {
	switch {
	case sa.InSPI == 0 || sa.OutSPI == 0:
		return fmt.Errorf("esp: SPIs in=%#x out=%#x: zero is reserved (the non-ESP marker)", sa.InSPI, sa.OutSPI)
	case !sa.Encap:
		return fmt.Errorf("esp: SA %#x: user-space ESP needs UDP encapsulation (Encap)", sa.InSPI)
	case !sa.Remote.IsValid() || sa.Remote.Port() == 0:
		return fmt.Errorf("esp: SA %#x: remote %v is not an address with a port", sa.InSPI, sa.Remote)
	case len(sa.TSRemote) == 0 || len(sa.TSLocal) == 0:
		return fmt.Errorf("esp: SA %#x: traffic selectors local=%v remote=%v: both needed", sa.InSPI, sa.TSLocal, sa.TSRemote)
	case sa.ReplayWindow > 1<<16:
		return fmt.Errorf("esp: SA %#x: replay window %d exceeds 65536", sa.InSPI, sa.ReplayWindow)
	}
	for _, ts := range append(append([]netip.Prefix{}, sa.TSLocal...), sa.TSRemote...) {
		if !ts.IsValid() || !ts.Addr().Is4() {
			return fmt.Errorf("esp: SA %#x: traffic selector %v: only IPv4 prefixes are carried", sa.InSPI, ts)
		}
	}
	return nil
}

// addHostState adds the virtual IP and the routes, both reference counted:
// two SAs to the same selector share a route, and after a CHILD_SA rekey
// the old and the new SA share the virtual IP, which must outlive the old
// one (deleting a device's last address also flushes its routes). Called
// with mu held.
func (p *Plane) addHostState(pr *pair) error {
	if p.cfg.Router == nil {
		return nil
	}
	if pr.vip.IsValid() {
		if err := p.holdAddr(pr.vip); err != nil {
			return fmt.Errorf("esp: virtual IP %v: %w", pr.vip, err)
		}
	}
	for i, ts := range pr.routes {
		if p.refs[ts] == 0 {
			if err := p.cfg.Router.AddRoute(ts); err != nil {
				p.delHostState(&pair{routes: pr.routes[:i], vip: pr.vip})
				return fmt.Errorf("esp: route %v: %w", ts, err)
			}
		}
		p.refs[ts]++
	}
	return nil
}

// pin takes the lease's reference on pr's routes and virtual IP, the
// first time each is seen. Called with mu held, after addHostState.
func (p *Plane) pin(pr *pair) {
	if p.cfg.Router == nil {
		return
	}
	for _, ts := range pr.routes {
		if !p.pinRoutes[ts] {
			p.pinRoutes[ts] = true
			p.refs[ts]++
		}
	}
	if pr.vip.IsValid() && !p.pinAddrs[pr.vip] {
		p.pinAddrs[pr.vip] = true
		p.addrs[pr.vip]++
		// A new virtual IP (the gateway gave another on a re-connect)
		// replaces the one held before: left on the device, an older
		// address could become the source of packets the new SA's
		// selectors refuse. SAs still using it keep their references.
		for a := range p.pinAddrs {
			if a != pr.vip {
				delete(p.pinAddrs, a)
				p.releaseAddr(a)
			}
		}
	}
}

// guard adds a guard for every prefix in rs but one that holds peer (the
// peer's outer address: its guard would catch the ESP datagrams to it
// once the device is gone, and the host's LAN traffic). Called with mu
// held.
func (p *Plane) guard(rs []netip.Prefix, peer netip.Addr) error {
	if p.cfg.Router == nil {
		return nil
	}
	for _, r := range rs {
		if !r.IsValid() || !r.Addr().Is4() {
			return fmt.Errorf("esp: guard %v: want an IPv4 prefix", r)
		}
		r = r.Masked()
		switch {
		case p.guards[r]:
			continue
		case peer.IsValid() && r.Contains(peer):
			p.log.Warn("esp: no guard for a selector that holds the peer", "selector", r, "peer", peer)
			continue
		}
		if err := p.cfg.Router.AddGuard(r); err != nil {
			return fmt.Errorf("esp: guard %v: %w", r, err)
		}
		p.guards[r] = true
	}
	return nil
}

// Guard implements dataplane.DataPlane: a guard (Router.AddGuard: a
// prohibit route under the device's) for each remote prefix, for the
// lease, except one that holds peer.
func (p *Plane) Guard(ctx context.Context, remote []netip.Prefix, peer netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return errors.New("esp: guard on a torn-down data plane")
	}
	return p.guard(remote, peer)
}

func (p *Plane) delHostState(pr *pair) {
	if p.cfg.Router == nil {
		return
	}
	for _, ts := range pr.routes {
		if p.refs[ts]--; p.refs[ts] <= 0 {
			delete(p.refs, ts)
			if err := p.cfg.Router.DelRoute(ts); err != nil {
				p.log.Warn("esp: removing route", "prefix", ts, "err", err)
			}
		}
	}
	if pr.vip.IsValid() {
		p.releaseAddr(pr.vip)
	}
}

// holdAddr takes one reference on address a, adding it to the device on
// the first. Called with mu held and a Router set.
func (p *Plane) holdAddr(a netip.Prefix) error {
	if p.addrs[a] == 0 {
		if err := p.cfg.Router.AddAddr(a); err != nil {
			return err
		}
	}
	p.addrs[a]++
	return nil
}

// releaseAddr drops one reference on a, removing it from the device with
// the last. Called with mu held and a Router set.
func (p *Plane) releaseAddr(a netip.Prefix) {
	if p.addrs[a]--; p.addrs[a] > 0 {
		return
	}
	delete(p.addrs, a)
	if err := p.cfg.Router.DelAddr(a); err != nil {
		p.log.Warn("esp: removing address", "prefix", a, "err", err)
	}
}

// AddAddr puts an inner address of this host on the device (a gateway's
// own inner address) for as long as the plane lives or until DelAddr. It
// shares the reference counts with the SAs' virtual IPs, so removing an SA
// never takes away an address still held here, and the other way round.
// Without a Router it does nothing.
func (p *Plane) AddAddr(a netip.Prefix) error {
	if !a.IsValid() || !a.Addr().Is4() {
		return fmt.Errorf("esp: inner address %v: want an IPv4 prefix", a)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("esp: inner address %v: data plane closed", a)
	}
	if p.cfg.Router == nil {
		return nil
	}
	if err := p.holdAddr(a); err != nil {
		return fmt.Errorf("esp: inner address %v: %w", a, err)
	}
	return nil
}

// DelAddr drops the hold AddAddr took on a; the address leaves the device
// once no SA uses it either. Releasing an address not held is a no-op.
func (p *Plane) DelAddr(a netip.Prefix) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg.Router == nil || p.addrs[a] == 0 {
		return
	}
	p.releaseAddr(a)
}

func (p *Plane) startTimers(sa dataplane.ChildSA) []*time.Timer {
	var ts []*time.Timer
	if d := sa.Lifetime.SoftTime; d > 0 {
		ts = append(ts, time.AfterFunc(d, func() { p.emit(sa.OutSPI, false, dataplane.Soft, "time") }))
	}
	if d := sa.Lifetime.HardTime; d > 0 {
		ts = append(ts, time.AfterFunc(d, func() { p.hardExpire(sa.InSPI, true, "time") }))
	}
	return ts
}

// publish rebuilds the lock-free snapshot. Called with mu held. For each
// prefix the newest SA sends, except a deferred one (ChildSA.Deferred)
// that has heard nothing yet while an older SA for the prefix remains.
func (p *Plane) publish() {
	t := &tables{in: make(map[uint32]*inbound, len(p.pairs))}
	oldest := map[netip.Prefix]uint64{}
	for _, pr := range p.pairs {
		for _, ts := range pr.routes {
			if g, ok := oldest[ts]; !ok || pr.gen < g {
				oldest[ts] = pr.gen
			}
		}
	}
	for spi, in := range p.draining {
		t.in[spi] = in
	}
	for spi, pr := range p.pairs {
		t.in[spi] = pr.in
		for _, ts := range pr.routes {
			waits := pr.in.deferred && !pr.in.heard.Load() && oldest[ts] != pr.gen
			t.routes = append(t.routes, route{prefix: ts, out: pr.out, gen: pr.gen, waits: waits})
		}
	}
	sort.Slice(t.routes, func(i, j int) bool {
		a, b := t.routes[i], t.routes[j]
		switch {
		case a.prefix.Bits() != b.prefix.Bits():
			return a.prefix.Bits() > b.prefix.Bits()
		case a.waits != b.waits:
			return !a.waits
		}
		return a.gen > b.gen
	})
	p.tab.Store(t)
}

// heard: the first authenticated packet on a deferred SA; the peer has
// it, so it may send now.
func (p *Plane) heard(in *inbound) {
	if in.heard.Swap(true) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.publish()
	}
}

// follow moves every SA sending to out's peer to the address from, where
// an authenticated ESP packet newer than any before just came from: the
// peer's NAT mapping changed (RFC 3948 section 2.2 leaves the update to the
// implementation; like RFC 7296 section 2.23 for IKE, only authenticated
// packets move it, and only the newest, so a delayed or replayed one cannot
// move it back).
func (p *Plane) follow(out *outbound, from netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *out.remote.Load()
	if old == from {
		return
	}
	for _, pr := range p.pairs {
		if *pr.out.remote.Load() == old {
			pr.out.remote.Store(&from)
		}
	}
	p.log.Info("esp: peer moved", "spi", fmt.Sprintf("%#x", out.spi), "from", old, "to", from)
}

// Remote returns where the SA with outbound SPI outSPI sends, and whether
// it is installed: the address negotiated, or where the peer's newest
// authenticated ESP packet came from.
func (p *Plane) Remote(outSPI uint32) (netip.AddrPort, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.pairs[p.outs[outSPI]]
	if !ok {
		return netip.AddrPort{}, false
	}
	return *pr.out.remote.Load(), true
}

// SetRemote makes the SA with outbound SPI outSPI send to `to` from now
// on: the IKE daemon learnt the peer's new NAT mapping from an
// authenticated IKE message (RFC 7296 section 2.23) and ESP follows at
// once, even when only this side sends.
func (p *Plane) SetRemote(outSPI uint32, to netip.AddrPort) error {
	if !to.IsValid() || to.Port() == 0 {
		return fmt.Errorf("esp: SA %#x: new remote %v is not an address with a port", outSPI, to)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.pairs[p.outs[outSPI]]
	if !ok {
		return fmt.Errorf("esp: SA %#x: no such outbound SPI", outSPI)
	}
	if old := *pr.out.remote.Load(); old != to {
		pr.out.remote.Store(&to)
		p.log.Info("esp: peer moved (told by IKE)", "spi", fmt.Sprintf("%#x", outSPI), "from", old, "to", to)
	}
	return nil
}

// Counters implements dataplane.DataPlane: the SA's lifetime meters.
func (p *Plane) Counters(ctx context.Context, inSPI, outSPI uint32) (dataplane.SACounters, error) {
	p.mu.Lock()
	pr, ok := p.pairs[inSPI]
	p.mu.Unlock()
	if !ok || pr.out.spi != outSPI {
		return dataplane.SACounters{}, fmt.Errorf("esp: SA in=%#x out=%#x: %w", inSPI, outSPI, dataplane.ErrNoSuchSA)
	}
	c := dataplane.SACounters{
		InPackets: pr.in.life.packets.Load(), InBytes: pr.in.life.bytes.Load(),
		OutPackets: pr.out.life.packets.Load(), OutBytes: pr.out.life.bytes.Load(),
	}
	return c, nil
}

// DrainTime is how long the inbound half of an SA removed after a rekey
// still accepts packets: those the peer sealed before it switched to the
// new SA and that were still on their way when the DELETE crossed them.
const DrainTime = 2 * time.Second

// Remove implements dataplane.DataPlane. The SA stops sending at once.
// If a newer SA carries all its selectors (a rekey), its inbound half
// drains for DrainTime; otherwise it goes at once.
func (p *Plane) Remove(ctx context.Context, inSPI, outSPI uint32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if in, ok := p.outs[outSPI]; ok && inSPI == 0 {
		inSPI = in
	}
	pr, ok := p.pairs[inSPI]
	if !ok {
		return nil
	}
	drain := p.succeeded(pr)
	p.removeLocked(inSPI)
	if drain && !p.closed {
		p.draining[inSPI] = pr.in
		p.publish()
		time.AfterFunc(DrainTime, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.draining[inSPI] == pr.in {
				delete(p.draining, inSPI)
				p.publish()
			}
		})
	}
	return nil
}

// succeeded: a newer SA carries every selector of pr. Called with mu held.
func (p *Plane) succeeded(pr *pair) bool {
	for _, ts := range pr.routes {
		found := false
		for _, o := range p.pairs {
			if o.gen > pr.gen && slices.Contains(o.routes, ts) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return len(pr.routes) > 0
}

func (p *Plane) removeLocked(inSPI uint32) bool {
	pr, ok := p.pairs[inSPI]
	if !ok {
		return false
	}
	for _, t := range pr.timers {
		t.Stop()
	}
	delete(p.pairs, inSPI)
	delete(p.outs, pr.out.spi)
	p.delHostState(pr)
	p.publish()
	p.log.Info("esp: SA removed", "in_spi", fmt.Sprintf("%#x", inSPI), "out_spi", fmt.Sprintf("%#x", pr.out.spi))
	return true
}

// hardExpire removes the pair that spi belongs to and reports it.
func (p *Plane) hardExpire(spi uint32, inbound bool, reason string) {
	p.mu.Lock()
	in := spi
	if !inbound {
		in = p.outs[spi]
	}
	if p.removeLocked(in) {
		p.emitLocked(spi, inbound, dataplane.Hard, reason)
	}
	p.mu.Unlock()
}

func (p *Plane) emit(spi uint32, inbound bool, kind dataplane.ExpireKind, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.emitLocked(spi, inbound, kind, reason)
}

// emitLocked reports an expiry unless the plane is closed; never blocks.
func (p *Plane) emitLocked(spi uint32, inbound bool, kind dataplane.ExpireKind, reason string) {
	if p.closed {
		return
	}
	ev := dataplane.ExpireEvent{SPI: spi, Inbound: inbound, Kind: kind, Reason: reason}
	p.log.Info("esp: SA expired", "spi", fmt.Sprintf("%#x", spi), "inbound", inbound, "kind", kind, "reason", reason)
	select {
	case p.expire <- ev:
	default:
		p.cnt.eventsLost.Add(1)
		p.log.Error("esp: expire event lost: nobody reads Expire()", "spi", fmt.Sprintf("%#x", spi), "kind", kind)
	}
}

// Close implements dataplane.DataPlane: it removes every SA and closes the
// Expire channel. It does not close the TUN device or the socket, and it
// leaves the lease's fail-closed state: the routes and virtual IPs on the
// device (packets with no SA are dropped while the device lives) and the
// guards (once it is gone).
func (p *Plane) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	for spi := range p.pairs {
		p.removeLocked(spi)
	}
	clear(p.draining)
	p.publish()
	p.closed = true
	close(p.expire)
	return nil
}

// Teardown implements dataplane.DataPlane: Close, then the lease's routes,
// virtual IPs and guards go. Call it before closing the Router's handle.
func (p *Plane) Teardown(ctx context.Context) error {
	p.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone || p.cfg.Router == nil {
		p.gone = true
		return nil
	}
	p.gone = true
	var ts []netip.Prefix
	for r := range p.pinRoutes {
		ts = append(ts, r)
	}
	p.delHostState(&pair{routes: ts})
	for a := range p.pinAddrs {
		p.releaseAddr(a)
	}
	clear(p.pinRoutes)
	clear(p.pinAddrs)
	var errs []error
	for r := range p.guards {
		if err := p.cfg.Router.DelGuard(r); err != nil {
			errs = append(errs, fmt.Errorf("esp: removing guard %v: %w", r, err))
		}
		delete(p.guards, r)
	}
	p.log.Info("esp: torn down: routes, virtual IPs and guards removed")
	return errors.Join(errs...)
}

// innerAddrs returns the source and destination of an inner IPv4 packet.
func innerAddrs(b []byte) (src, dst netip.Addr, ok bool) {
	if len(b) < 20 || b[0]>>4 != 4 || int(b[0]&0xf)*4 < 20 || int(binary.BigEndian.Uint16(b[2:])) > len(b) {
		return netip.Addr{}, netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), true
}

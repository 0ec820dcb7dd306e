package xfrm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"ferry/ipsec/dataplane"
)

// ErrNoESP: the kernel cannot build ESP states (esp4 not loaded or built).
var ErrNoESP = errors.New("kernel has no ESP support (load esp4)")

// Config is what a Plane needs. The netlink handle decides the network
// namespace; nil means a new handle in the calling thread's namespace.
type Config struct {
	Handle *netlink.Handle
	Log    *slog.Logger
}

type installed struct {
	in, out *netlink.XfrmState
	reqid   int
	keys    []polKey          // its policies' selectors (policy_linux.go)
	sa      dataplane.ChildSA // for its virtual IP and remote selectors
	routed  bool              // hostRoutes holds its virtual IP and routes
	// outPending: a deferred SA (ChildSA.Deferred) whose outbound state
	// waits for the older SA of its selectors to go (promote)
	outPending bool
}

// stateOps adds and deletes XFRM states. The kernel's (through the
// netlink handle) in production; the policy tests on hosts whose kernel
// has no ESP swap in one that only records, so that the policies (real
// kernel objects there too) can be checked.
type stateOps interface {
	XfrmStateAdd(*netlink.XfrmState) error
	XfrmStateDel(*netlink.XfrmState) error
}

// Plane is the kernel XFRM data plane. It implements dataplane.DataPlane.
type Plane struct {
	h      *netlink.Handle
	states stateOps
	host   *hostRoutes
	log    *slog.Logger
	expire chan dataplane.ExpireEvent
	done   chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	sas     map[uint32]*installed // by inbound SPI
	inbound map[uint32]bool       // SPI -> is inbound, for expire events
	pols    map[polKey]*polEntry  // every policy installed, until Teardown
	// draining: inbound states of SAs removed after a rekey, deleted
	// drainTime later (Remove)
	draining  map[uint32]*netlink.XfrmState
	drainTime time.Duration
	reqids    map[string]int               // selector set -> reqid, for the lease
	pinned    map[string]dataplane.ChildSA // by remote selectors: whose virtual IP and routes are held for the lease
	reqid     int
	closed    bool
	gone      bool // Teardown ran
}

var _ dataplane.DataPlane = (*Plane)(nil)

// New subscribes to XFRM expire messages (in the calling thread's network
// namespace) and returns a Plane.
func New(ctx context.Context, cfg Config) (*Plane, error) {
	p := &Plane{h: cfg.Handle, log: cfg.Log, expire: make(chan dataplane.ExpireEvent, 64),
		done: make(chan struct{}), sas: map[uint32]*installed{}, inbound: map[uint32]bool{},
		pols: map[polKey]*polEntry{}, draining: map[uint32]*netlink.XfrmState{}, drainTime: DrainTime, reqids: map[string]int{}, pinned: map[string]dataplane.ChildSA{}}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.h == nil {
		h, err := netlink.NewHandle(unix.NETLINK_XFRM, unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("xfrm: netlink handle: %w", err)
		}
		p.h = h
	}
	p.states = p.h
	p.host = newHostRoutes(p.h, p.log)
	msgs, errs := make(chan netlink.XfrmMsg, 16), make(chan error, 1)
	if err := netlink.XfrmMonitor(msgs, p.done, errs, nl.XFRM_MSG_EXPIRE); err != nil {
		return nil, fmt.Errorf("xfrm: subscribing to expire messages: %w", err)
	}
	p.wg.Add(1)
	go p.watch(msgs, errs)
	return p, nil
}

// watch turns kernel expire messages into ExpireEvents.
func (p *Plane) watch(msgs <-chan netlink.XfrmMsg, errs <-chan error) {
	defer p.wg.Done()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				return
			}
			if e, ok := m.(*netlink.XfrmMsgExpire); ok && e.XfrmState != nil {
				p.forward(e)
			}
		case err := <-errs:
			p.log.Error("xfrm: expire monitor stopped", "err", err)
			return
		case <-p.done:
			return
		}
	}
}

func (p *Plane) forward(e *netlink.XfrmMsgExpire) {
	spi := uint32(e.XfrmState.Spi)
	kind := dataplane.Soft
	if e.Hard {
		kind = dataplane.Hard
	}
	p.mu.Lock()
	in, ours := p.inbound[spi]
	p.mu.Unlock()
	if !ours {
		return
	}
	// Never call XfrmState.String(): it panics on a nil Pcpunum (docs/LAB.md).
	p.log.Info("xfrm: SA expired", "spi", fmt.Sprintf("%#x", spi), "inbound", in, "kind", kind)
	select {
	case p.expire <- dataplane.ExpireEvent{SPI: spi, Inbound: in, Kind: kind, Reason: "kernel"}:
	case <-p.done:
	}
}

// Expire implements dataplane.DataPlane.
func (p *Plane) Expire() <-chan dataplane.ExpireEvent { return p.expire }

// BypassSocket implements dataplane.DataPlane for an IPv4 socket.
func (p *Plane) BypassSocket(fd uintptr) error { return bypass(fd, unix.AF_INET) }

// Install implements dataplane.DataPlane: both states, then the
// policies, then the virtual IP and routes. With the policies of an SA
// with the same selectors already in (a rekey), the policies take the new
// SA's template and keep their users: removing the old SA later leaves
// them to the new one (make-before-break). The first SA of a selector set
// also installs the guards of its remote selectors and holds its virtual
// IP and routes for the lease (see Teardown).
func (p *Plane) Install(ctx context.Context, sa dataplane.ChildSA) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("xfrm: install on a closed data plane")
	}
	if _, dup := p.sas[sa.InSPI]; dup {
		return fmt.Errorf("xfrm: inbound SPI %#x is already installed", sa.InSPI)
	}
	reqid := p.reqidFor(sa)
	in, out, err := states(sa, reqid)
	if err != nil {
		return err
	}
	inst := &installed{in: in, out: out, reqid: reqid, keys: policyKeys(sa), sa: sa}
	// The kernel sends on the newest outbound state of a reqid at once;
	// the responder of a rekey holds the new one back until the old SA
	// goes (the initiator has installed the new SA by then).
	inst.outPending = sa.Deferred && p.older(inst) != nil
	if err := p.addStates(inst); err != nil {
		return err
	}
	if err := p.guard(sa.TSRemote, sa.Remote.Addr()); err != nil {
		p.removeLocked(inst, false)
		return err
	}
	if err := p.attach(inst); err != nil {
		inst.keys = nil // attach left the policies as they were
		p.removeLocked(inst, false)
		return err
	}
	if err := p.host.hold(sa); err != nil {
		p.removeLocked(inst, false)
		return err
	}
	inst.routed = true
	p.pin(sa)
	p.sas[sa.InSPI], p.inbound[sa.InSPI], p.inbound[sa.OutSPI] = inst, true, false
	p.log.Info("xfrm: SA installed", "in_spi", fmt.Sprintf("%#x", sa.InSPI), "out_spi", fmt.Sprintf("%#x", sa.OutSPI),
		"remote", sa.Remote, "vip", sa.VirtualIP, "replay_window", in.ReplayWindow, "esn", sa.ESN, "reqid", reqid)
	return nil
}

func (p *Plane) addStates(inst *installed) error {
	ss := []*netlink.XfrmState{inst.in, inst.out}
	if inst.outPending {
		ss = ss[:1]
	}
	for i, s := range ss {
		if err := p.states.XfrmStateAdd(s); err != nil {
			if i == 1 {
				p.states.XfrmStateDel(inst.in)
			}
			return fmt.Errorf("xfrm: state SPI %#x %v -> %v (%s): %w", uint32(s.Spi), s.Src, s.Dst, aeadName, stateErr(err))
		}
	}
	return nil
}

// stateErr names the usual cause of the kernel's terse errors.
func stateErr(err error) error {
	switch {
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %w", ErrNoESP, err)
	case errors.Is(err, unix.ENOSYS):
		// The kernel checks the AEAD before the ESP type: ENOSYS is either.
		return fmt.Errorf("%w, or no %s (load gcm, seqiv, drbg): %w", ErrNoESP, aeadName, err)
	}
	return err
}

// pin takes a second hold on sa's virtual IP and routes, released by
// Teardown only: they outlive every SA of the lease, so that packets to
// the remote selectors keep their source and meet the block policies
// instead of leaving by the default route. A new virtual IP for the same
// selectors (a re-connect) takes the place of the old one. Called with mu
// held.
func (p *Plane) pin(sa dataplane.ChildSA) {
	if !sa.VirtualIP.IsValid() {
		return
	}
	// By the remote selectors only: a new virtual IP changes the local
	// one.
	k := selectorsKey(dataplane.ChildSA{TSRemote: sa.TSRemote})
	old, ok := p.pinned[k]
	if ok && old.VirtualIP == sa.VirtualIP {
		return
	}
	if err := p.host.hold(sa); err != nil {
		p.log.Warn("xfrm: holding virtual IP and routes for the lease", "vip", sa.VirtualIP, "err", err)
		return
	}
	p.pinned[k] = sa
	if ok {
		p.host.release(old)
	}
}

// older returns an SA with inst's selectors that sends (no pending
// outbound), other than inst, or nil. Called with mu held.
func (p *Plane) older(inst *installed) *installed {
	k := selectorsKey(inst.sa)
	for _, o := range p.sas {
		if o != inst && !o.outPending && selectorsKey(o.sa) == k {
			return o
		}
	}
	return nil
}

// succeeded: another SA with inst's selectors is installed (a rekey).
// Called with mu held.
func (p *Plane) succeeded(inst *installed) bool {
	k := selectorsKey(inst.sa)
	for _, o := range p.sas {
		if o != inst && selectorsKey(o.sa) == k {
			return true
		}
	}
	return false
}

// promote adds the held-back outbound states of the deferred SAs with
// gone's selectors once no other SA of them sends, before gone's own
// states are deleted: make-before-break. Called with mu held, gone
// already out of p.sas or about to be.
func (p *Plane) promote(gone *installed) error {
	if p.older(gone) != nil {
		return nil // another SA still sends
	}
	k := selectorsKey(gone.sa)
	var errs []error
	for _, o := range p.sas {
		if o == gone || !o.outPending || selectorsKey(o.sa) != k {
			continue
		}
		if err := p.states.XfrmStateAdd(o.out); err != nil {
			errs = append(errs, fmt.Errorf("xfrm: deferred outbound state SPI %#x: %w", uint32(o.out.Spi), stateErr(err)))
			continue
		}
		o.outPending = false
		p.log.Info("xfrm: deferred outbound SA now sends", "out_spi", fmt.Sprintf("%#x", uint32(o.out.Spi)))
	}
	return errors.Join(errs...)
}

// Remove implements dataplane.DataPlane.
func (p *Plane) Remove(ctx context.Context, inSPI, outSPI uint32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	inst, ok := p.sas[inSPI]
	if !ok {
		return nil
	}
	delete(p.sas, inSPI)
	delete(p.inbound, inSPI)
	delete(p.inbound, uint32(inst.out.Spi))
	if p.closed || !p.succeeded(inst) {
		return p.removeLocked(inst, false)
	}
	// A rekey: the inbound state drains for what the peer sealed before
	// it switched and is still on its way.
	err := p.removeLocked(inst, true)
	p.draining[inSPI] = inst.in
	time.AfterFunc(p.drainTime, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if st := p.draining[inSPI]; st == inst.in {
			delete(p.draining, inSPI)
			p.delState(st)
		}
	})
	return err
}

// DrainTime is how long the inbound state of an SA removed after a rekey
// still accepts packets.
const DrainTime = 2 * time.Second

// delState deletes s; a hard expiry may have deleted it already.
func (p *Plane) delState(s *netlink.XfrmState) error {
	if err := p.states.XfrmStateDel(s); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("xfrm: deleting state SPI %#x: %w", uint32(s.Spi), err)
	}
	return nil
}

// removeLocked takes inst's policies away from it first (to the next SA
// of its selectors, or to block), then deletes its states: no moment
// without a policy, no policy pointing at a deleted state's template.
// With keepIn the inbound state stays (the caller drains it).
func (p *Plane) removeLocked(inst *installed, keepIn bool) error {
	errs := []error{p.detach(inst.keys, inst)}
	if !p.closed && !inst.outPending {
		errs = append(errs, p.promote(inst))
	}
	if inst.routed {
		p.host.release(inst.sa)
		inst.routed = false
	}
	errs = append(errs, p.delState(inst.out))
	if !keepIn {
		errs = append(errs, p.delState(inst.in))
	}
	return errors.Join(errs...)
}

// Close implements dataplane.DataPlane: it removes every SA and stops the
// expire monitor, and leaves the lease's fail-closed state in the kernel:
// block policies where the SAs' policies were, the guards, the virtual IP
// and its routes. The process may exit (or die) now; nothing to the
// remote selectors leaves in clear until Teardown, or a new Plane installs
// SAs for them (XFRM_MSG_UPDPOLICY takes the block policies over).
func (p *Plane) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var errs []error
	for spi, inst := range p.sas {
		errs = append(errs, p.removeLocked(inst, false))
		delete(p.sas, spi)
	}
	for spi, st := range p.draining {
		errs = append(errs, p.delState(st))
		delete(p.draining, spi)
	}
	p.mu.Unlock()
	close(p.done)
	p.wg.Wait()
	close(p.expire)
	return errors.Join(errs...)
}

// Guard implements dataplane.DataPlane: block policies (priority
// PriorityGuard) from any address to each remote prefix (out) and from it
// to any address (in, fwd), for the lease. A prefix that holds peer, the
// gateway's outer address, is skipped with a warning.
func (p *Plane) Guard(ctx context.Context, remote []netip.Prefix, peer netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return errors.New("xfrm: guard on a torn-down data plane")
	}
	return p.guard(remote, peer)
}

// Teardown implements dataplane.DataPlane: the deliberate end of the
// lease. It closes the plane, then deletes every policy it installed (the
// SAs' blocks and the guards) and releases the virtual IP and routes.
func (p *Plane) Teardown(ctx context.Context) error {
	err := p.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return err
	}
	p.gone = true
	errs := []error{err, p.dropPolicies()}
	p.host.releaseAll()
	clear(p.pinned)
	p.log.Info("xfrm: torn down: policies, guards, virtual IP and routes removed")
	return errors.Join(errs...)
}

// SetRemote moves the SA with outbound SPI outSPI to the peer's new NAT
// mapping `to`, learnt by the IKE daemon from an authenticated message
// (RFC 7296 section 2.23). A new port on the same address updates the UDP
// encapsulation of both states in place with XFRM_MSG_UPDSA, which keeps
// their sequence numbers and replay windows. A new address would need
// XFRM_MSG_MIGRATE (states and policy templates are keyed by it), which
// this plane does not do: it returns an error, and the SA keeps its
// address until the next rekey installs one at the new address.
func (p *Plane) SetRemote(outSPI uint32, to netip.AddrPort) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var inst *installed
	for _, i := range p.sas {
		if uint32(i.out.Spi) == outSPI {
			inst = i
		}
	}
	switch {
	case inst == nil:
		return fmt.Errorf("xfrm: SA %#x: no such outbound SPI", outSPI)
	case inst.sa.Remote == to:
		return nil
	case !inst.sa.Encap || inst.in.Encap == nil || inst.out.Encap == nil:
		return fmt.Errorf("xfrm: SA %#x: remote %v -> %v: only UDP-encapsulated SAs follow a NAT", outSPI, inst.sa.Remote, to)
	case inst.sa.Remote.Addr() != to.Addr():
		return fmt.Errorf("xfrm: SA %#x: remote address %v -> %v: needs XFRM_MSG_MIGRATE, not supported", outSPI, inst.sa.Remote.Addr(), to.Addr())
	}
	in, out := *inst.in, *inst.out
	inEncap, outEncap := *in.Encap, *out.Encap
	inEncap.SrcPort, outEncap.DstPort = int(to.Port()), int(to.Port())
	in.Encap, out.Encap = &inEncap, &outEncap
	ss := []*netlink.XfrmState{&in, &out}
	if inst.outPending {
		ss = ss[:1] // the outbound state is not in the kernel yet
	}
	for _, s := range ss {
		if err := p.h.XfrmStateUpdate(s); err != nil {
			return fmt.Errorf("xfrm: SA %#x: update encapsulation to port %d: %w", uint32(s.Spi), to.Port(), err)
		}
	}
	inst.in, inst.out, inst.sa.Remote = &in, &out, to
	p.log.Info("xfrm: peer moved", "out_spi", fmt.Sprintf("%#x", outSPI), "to", to)
	return nil
}

// Counters implements dataplane.DataPlane from the kernel's per-state
// lifetime counters (XFRM_MSG_GETSA, curlft): the bytes and packets the
// kernel counts against the SA's limits.
func (p *Plane) Counters(ctx context.Context, inSPI, outSPI uint32) (dataplane.SACounters, error) {
	p.mu.Lock()
	inst, ok := p.sas[inSPI]
	var ss []*netlink.XfrmState
	if ok {
		ss = []*netlink.XfrmState{inst.in, inst.out}
		if inst.outPending {
			ss = ss[:1] // not sending yet: nothing out
		}
	}
	p.mu.Unlock()
	if !ok || uint32(inst.out.Spi) != outSPI {
		return dataplane.SACounters{}, fmt.Errorf("xfrm: SA in=%#x out=%#x: %w", inSPI, outSPI, dataplane.ErrNoSuchSA)
	}
	var c dataplane.SACounters
	for i, s := range ss {
		got, err := p.h.XfrmStateGet(&netlink.XfrmState{Src: s.Src, Dst: s.Dst, Proto: s.Proto, Spi: s.Spi})
		if err != nil {
			if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
				err = fmt.Errorf("%w (hard expired?): %w", dataplane.ErrNoSuchSA, err)
			}
			return dataplane.SACounters{}, fmt.Errorf("xfrm: reading state SPI %#x: %w", uint32(s.Spi), err)
		}
		if i == 0 {
			c.InPackets, c.InBytes = got.Statistics.Packets, got.Statistics.Bytes
		} else {
			c.OutPackets, c.OutBytes = got.Statistics.Packets, got.Statistics.Bytes
		}
	}
	return c, nil
}

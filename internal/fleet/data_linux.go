package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"

	"ferry/ipsec/esp"
)

// Ports is the played servers' data path: one TUN device in the fleet's
// namespace carries every server's inner packets, and each server's
// user-space ESP plane (esp.Plane, as image A runs it) reads only its own
// from it, picked by inner source address (the virtual IP its gateway
// gave it), as if it had a device of its own. The virtual IPs are local
// addresses of the namespace, so the kernel's TCP is every server's TCP.
// One device and one reader instead of a device (or a namespace) per
// server: 1,000 planes cost goroutines, not network devices.
type Ports struct {
	tun     *esp.TUN
	mtu     int
	mu      sync.RWMutex
	byVIP   map[netip.Addr]*port
	dropped atomic.Uint64 // packets from an address no plane holds, or to a full queue
}

// OpenPorts creates TUN device name (up, MTU mtu) in the calling thread's
// namespace. The caller routes the gateway's subnets into it and makes
// the virtual IP pool local.
func OpenPorts(name string, mtu int) (*Ports, error) {
	t, err := esp.OpenTUN(name, mtu)
	if err != nil {
		return nil, err
	}
	return &Ports{tun: t, mtu: mtu, byVIP: map[netip.Addr]*port{}}, nil
}

// Run hands each packet the kernel routes into the device to the plane
// holding its source address, until ctx ends or the device fails. A
// plane that does not keep up loses packets, as a NIC queue would: TCP
// sends them again.
func (ps *Ports) Run(ctx context.Context) error {
	go func() { <-ctx.Done(); ps.tun.Close() }()
	buf := make([]byte, 65535)
	for {
		n, err := ps.tun.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fleet ports: %w", err)
		}
		if n < 20 || buf[0]>>4 != 4 {
			ps.dropped.Add(1)
			continue
		}
		src := netip.AddrFrom4([4]byte(buf[12:16]))
		ps.mu.RLock()
		p := ps.byVIP[src]
		ps.mu.RUnlock()
		if p == nil {
			ps.dropped.Add(1)
			continue
		}
		select {
		case p.in <- append([]byte(nil), buf[:n]...):
		default:
			ps.dropped.Add(1)
		}
	}
}

// Dropped counts the packets no plane took.
func (ps *Ports) Dropped() uint64 { return ps.dropped.Load() }

// newPort is one server's view of the device: its plane's TUN (Read gets
// the packets from its virtual IP, Write puts inner packets on the shared
// device) and its plane's Router (the virtual IP, once installed, is what
// Run picks its packets by; routes are the namespace's, set once for all).
func (ps *Ports) newPort() *port {
	return &port{ps: ps, in: make(chan []byte, 256), done: make(chan struct{})}
}

type port struct {
	ps   *Ports
	in   chan []byte
	done chan struct{}
	once sync.Once
	vip  atomic.Pointer[netip.Addr]
}

var _ esp.Router = (*port)(nil)

func (p *port) Read(b []byte) (int, error) {
	select {
	case pkt := <-p.in:
		return copy(b, pkt), nil
	case <-p.done:
		return 0, io.EOF
	}
}

func (p *port) Write(b []byte) (int, error) { return p.ps.tun.Write(b) }

// close ends Read (the plane's Run) and forgets the virtual IP.
func (p *port) close() {
	p.once.Do(func() {
		close(p.done)
		if a := p.vip.Load(); a != nil {
			p.DelAddr(netip.PrefixFrom(*a, 32))
		}
	})
}

func (p *port) AddAddr(a netip.Prefix) error {
	if !a.Addr().Is4() {
		return fmt.Errorf("fleet ports: virtual IP %v: want IPv4", a)
	}
	p.ps.mu.Lock()
	defer p.ps.mu.Unlock()
	if q := p.ps.byVIP[a.Addr()]; q != nil && q != p {
		return fmt.Errorf("fleet ports: virtual IP %v is already another server's", a)
	}
	p.ps.byVIP[a.Addr()] = p
	addr := a.Addr()
	p.vip.Store(&addr)
	return nil
}

func (p *port) DelAddr(a netip.Prefix) error {
	p.ps.mu.Lock()
	defer p.ps.mu.Unlock()
	if p.ps.byVIP[a.Addr()] == p {
		delete(p.ps.byVIP, a.Addr())
	}
	return nil
}

// VIP is the virtual IP the plane holds, if any.
func (p *port) VIP() (netip.Addr, error) {
	if a := p.vip.Load(); a != nil {
		return *a, nil
	}
	return netip.Addr{}, errors.New("no virtual IP installed")
}

func (p *port) AddRoute(netip.Prefix) error { return nil }
func (p *port) DelRoute(netip.Prefix) error { return nil }
func (p *port) AddGuard(netip.Prefix) error { return nil }
func (p *port) DelGuard(netip.Prefix) error { return nil }

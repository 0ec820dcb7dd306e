package esp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TUN offload flags (include/uapi/linux/if_tun.h).
const (
	tunFCsum = 0x01 // TUN_F_CSUM: we accept packets with partial checksums
	tunFTSO4 = 0x02 // TUN_F_TSO4: we accept TCPv4 super-segments
)

// TUN is a layer-3 TUN device (IFF_TUN|IFF_NO_PI). Read and Write carry one
// IPv4 packet each. When the kernel accepts offloads (IFF_VNET_HDR with
// TSO4 and checksum offload), the Plane bypasses them and moves 64 KB TCP
// super-segments instead (see vnet.go).
type TUN struct {
	f     *os.File
	rc    syscall.RawConn
	Name  string
	Index int
	vnet  bool

	mu    sync.Mutex // guards the segments Read has cut but not returned
	rbuf  []byte
	segs  []byte
	queue [][]byte
}

// OpenTUN creates (or attaches to) the TUN device name in the calling
// thread's network namespace, sets its MTU and brings it up. It asks for
// TCP segmentation and checksum offload, and works without them.
func OpenTUN(name string, mtu int) (*TUN, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tun %q: name longer than %d bytes", name, unix.IFNAMSIZ-1)
	}
	fd, vnet, err := openTUN(name)
	if err != nil {
		return nil, err
	}
	// Non-blocking plus os.NewFile puts the fd in Go's poller, so Close
	// unblocks a pending Read.
	f := os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tun %q: %w", name, err)
	}
	link, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetMTU(link, mtu)
	}
	if err == nil {
		err = netlink.LinkSetUp(link)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tun %q: mtu %d, up: %w", name, mtu, err)
	}
	if vnet {
		// Best effort: without it a super-segment still goes out, in two
		// UDP GSO sends instead of one.
		netlink.LinkSetGSOMaxSegs(link, tsoMaxSegs(mtu))
	}
	return &TUN{f: f, rc: rc, Name: name, Index: link.Attrs().Index, vnet: vnet}, nil
}

// tsoMaxSegs is how many segments of at most mtu bytes the kernel may put
// in one TCP super-segment so that, once sealed, they are one UDP GSO send:
// with the default 64 KB a 1500-byte path gets 45-47 segments, which ESP
// grows past one datagram's 64 KB, and each super-segment then costs two
// sendmsg, two GRO reads on the peer and two TUN writes there.
func tsoMaxSegs(mtu int) int {
	return max(1, min(gsoMaxSegs, gsoMaxBytes/espLen(mtu)))
}

// openTUN opens the device with virtio headers and offloads if the kernel
// agrees, else as a plain TUN.
func openTUN(name string) (fd int, vnet bool, err error) {
	for _, flags := range []uint16{unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR, unix.IFF_TUN | unix.IFF_NO_PI} {
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return -1, false, fmt.Errorf("open /dev/net/tun: %w", err)
		}
		var req [unix.IFNAMSIZ + 64]byte // struct ifreq
		copy(req[:], name)
		*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = flags
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
			unix.Close(fd)
			err = fmt.Errorf("ioctl(%q, TUNSETIFF, %#x): %w", name, flags, e)
			continue
		}
		if flags&unix.IFF_VNET_HDR == 0 {
			return fd, false, nil
		}
		if unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen) == nil &&
			unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4) == nil {
			return fd, true, nil
		}
		unix.Close(fd) // the device persists only while open: retry plain
	}
	return -1, false, err
}

// Close closes the device.
func (t *TUN) Close() error { return t.f.Close() }

// vnetOn says whether packets carry virtio headers (offloads accepted).
func (t *TUN) vnetOn() bool { return t.vnet }

// readVnet reads one packet or super-segment into b, which must hold
// vnetHdrLen+65535 bytes.
func (t *TUN) readVnet(b []byte) (vnetHdr, []byte, error) {
	var h vnetHdr
	n, err := t.f.Read(b)
	if err != nil {
		return h, nil, err
	}
	if n < vnetHdrLen {
		return h, nil, fmt.Errorf("tun %s: read %d bytes, shorter than the virtio header", t.Name, n)
	}
	h.decode(b)
	return h, b[vnetHdrLen:n], nil
}

// writeVnet writes h followed by the pieces iov[1:] as one packet; iov[0]
// is the caller's free slot for the header, so no slice is allocated.
func (t *TUN) writeVnet(h vnetHdr, iov [][]byte) error {
	var hb [vnetHdrLen]byte
	h.encode(hb[:])
	iov[0] = hb[:]
	var werr error
	err := t.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Writev(int(fd), iov)
		return werr != unix.EAGAIN
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("writev(tun %s, %d pieces): %w", t.Name, len(iov)-1, err)
	}
	return nil
}

// Read returns one IPv4 packet. With offloads on, it cuts a super-segment
// and returns the pieces one by one.
func (t *TUN) Read(b []byte) (int, error) {
	if !t.vnet {
		return t.f.Read(b)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.queue) == 0 {
		if t.rbuf == nil {
			t.rbuf = make([]byte, vnetHdrLen+65535)
		}
		h, pkt, err := t.readVnet(t.rbuf)
		if err != nil {
			return 0, err
		}
		count, segLen, err := tsoLayout(h, pkt)
		if err != nil {
			return 0, err
		}
		if cap(t.segs) < count*segLen {
			t.segs = make([]byte, count*segLen)
		}
		t.queue = t.queue[:0]
		if _, err := tsoSplit(h, pkt, func(i, n int) []byte {
			s := t.segs[i*segLen : i*segLen+n]
			t.queue = append(t.queue, s)
			return s
		}); err != nil {
			return 0, err
		}
	}
	n := copy(b, t.queue[0])
	t.queue = t.queue[1:]
	return n, nil
}

// Write sends one IPv4 packet.
func (t *TUN) Write(b []byte) (int, error) {
	if !t.vnet {
		return t.f.Write(b)
	}
	if err := t.writeVnet(vnetHdr{}, [][]byte{nil, b}); err != nil {
		return 0, err
	}
	return len(b), nil
}

// NetlinkRouter adds the virtual IP to a TUN device and routes traffic
// selectors into it, in the network namespace its handle was made in.
type NetlinkRouter struct {
	H     *netlink.Handle
	Index int // the TUN device's ifindex
}

// NewNetlinkRouter makes a router for the TUN in the calling thread's
// network namespace.
func NewNetlinkRouter(t *TUN) (*NetlinkRouter, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	return &NetlinkRouter{H: h, Index: t.Index}, nil
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func (r *NetlinkRouter) link() netlink.Link {
	return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: r.Index}}
}

// AddAddr assigns the virtual IP; an existing one is fine.
func (r *NetlinkRouter) AddAddr(p netip.Prefix) error {
	err := r.H.AddrAdd(r.link(), &netlink.Addr{IPNet: ipnet(p)})
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// DelAddr removes the virtual IP.
func (r *NetlinkRouter) DelAddr(p netip.Prefix) error {
	return r.H.AddrDel(r.link(), &netlink.Addr{IPNet: ipnet(p)})
}

// AddRoute routes p into the TUN device (replacing any route to p).
func (r *NetlinkRouter) AddRoute(p netip.Prefix) error {
	return r.H.RouteReplace(&netlink.Route{LinkIndex: r.Index, Dst: ipnet(p.Masked()), Scope: netlink.SCOPE_LINK})
}

// DelRoute removes the route to p through the TUN device.
func (r *NetlinkRouter) DelRoute(p netip.Prefix) error {
	err := r.H.RouteDel(&netlink.Route{LinkIndex: r.Index, Dst: ipnet(p.Masked()), Scope: netlink.SCOPE_LINK})
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// GuardMetric is the metric of the guards: higher (worse) than any route
// a device or an administrator puts in, so a guard only ever decides
// when nothing else routes its prefix more specifically or better.
const GuardMetric = 0x7fffffff

func guardRoute(p netip.Prefix) *netlink.Route {
	return &netlink.Route{Dst: ipnet(p.Masked()), Type: unix.RTN_PROHIBIT, Priority: GuardMetric, Table: unix.RT_TABLE_MAIN}
}

// AddGuard adds `prohibit p metric GuardMetric` to the main table: a
// kernel object that outlives this process and its TUN device, so that
// after a crash or kill -9 packets to p fail with EACCES instead of
// following the default route in clear.
func (r *NetlinkRouter) AddGuard(p netip.Prefix) error {
	return r.H.RouteReplace(guardRoute(p))
}

// DelGuard removes the guard of p.
func (r *NetlinkRouter) DelGuard(p netip.Prefix) error {
	err := r.H.RouteDel(guardRoute(p))
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

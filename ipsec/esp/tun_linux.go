package esp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TUN is a layer-3 TUN device (IFF_TUN|IFF_NO_PI): each Read and Write is
// one IPv4 packet.
type TUN struct {
	*os.File
	Name  string
	Index int
}

// OpenTUN creates (or attaches to) the TUN device name in the calling
// thread's network namespace, sets its MTU and brings it up.
func OpenTUN(name string, mtu int) (*TUN, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tun %q: name longer than %d bytes", name, unix.IFNAMSIZ-1)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var req [unix.IFNAMSIZ + 64]byte // struct ifreq
	copy(req[:], name)
	*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("ioctl(%q, TUNSETIFF, IFF_TUN|IFF_NO_PI): %w", name, e)
	}
	// Non-blocking plus os.NewFile puts the fd in Go's poller, so Close
	// unblocks a pending Read.
	f := os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
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
	return &TUN{File: f, Name: name, Index: link.Attrs().Index}, nil
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

package netcfg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link is the interface that Up configured.
type Link struct {
	Name  string
	Index int
	MAC   net.HardwareAddr
	Addr  *net.IPNet
	// Carrier is true when the link reported carrier (or operational state
	// up) before CarrierWait ran out.
	Carrier bool
	// Config is the static configuration applied: the one given, or the
	// one the DHCP server granted (ParseIP(Config.String()) gives it back,
	// so a later boot can keep the same address without DHCP).
	Config *Config
	// Lease is the DHCP lease; nil for a static configuration.
	Lease *Lease
}

// String describes the link for logs: "eth0 52:54:00:12:34:56 10.9.0.2/24".
func (l *Link) String() string {
	if l == nil {
		return "<no link>"
	}
	s := fmt.Sprintf("%s %s %s", l.Name, l.MAC, l.Addr)
	if l.Lease != nil {
		s += " dhcp " + l.Lease.String()
	}
	if !l.Carrier {
		s += " (no carrier)"
	}
	return s
}

// NoCarrierError is wrapped by Up's error when the link is configured but
// reported no carrier in time; the returned *Link is still valid.
type NoCarrierError struct {
	Link  string
	State string
	Wait  time.Duration
}

func (e *NoCarrierError) Error() string {
	return fmt.Sprintf("link %s: no carrier after %v (operstate %s)", e.Link, e.Wait, e.State)
}

// pollEvery is how often Up looks for the device and its carrier.
const pollEvery = 100 * time.Millisecond

// Up configures the network as cfg says, in the network namespace of the
// calling thread: it sets lo up, picks the device (cfg.Device, else the
// first non-loopback Ethernet link with a MAC address, by index, waiting up
// to cfg.LinkWait for one to appear) and sets it up. With cfg.DHCP it waits
// for carrier, asks a DHCPv4 server (bounded by cfg.DHCPWait; a
// *NoLeaseError when none answers) and applies what the ACK grants;
// otherwise it applies cfg. Applying adds the address with its netmask,
// a default route via the gateway when there is one and the host name
// when there is one; a static configuration then waits up to
// cfg.CarrierWait for carrier.
//
// When the carrier does not come, Up returns the *Link and an
// *NoCarrierError, so that a caller may decide to try anyway.
func Up(ctx context.Context, cfg *Config, log *slog.Logger) (*Link, error) {
	if cfg == nil || (!cfg.DHCP && cfg.Client.To4() == nil) {
		return nil, errors.New("netcfg.Up: no client address and no DHCP")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l, err := linkUp(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a := l.Attrs()
	log.Info("netcfg: using link", "link", a.Name, "index", a.Index, "mac", a.HardwareAddr.String())
	link := &Link{Name: a.Name, Index: a.Index, MAC: a.HardwareAddr, Config: cfg}
	if cfg.DHCP {
		return link, upDHCP(ctx, link, cfg, log)
	}
	if err := apply(l, cfg); err != nil {
		return nil, err
	}
	link.Addr = cfg.Prefix()
	if err := carrier(ctx, link, orDefault(cfg.CarrierWait, DefaultCarrierWait), log); err != nil {
		return link, err
	}
	log.Info("netcfg: link up", "link", a.Name, "addr", link.Addr.String(), "gateway", cfg.Gateway)
	return link, nil
}

// upDHCP waits for carrier (a DISCOVER sent before it is lost), gets a
// lease and applies it. A missing carrier is not fatal: DHCP may still
// work on a NIC that reports it late, and its own error is the clearer one.
func upDHCP(ctx context.Context, link *Link, cfg *Config, log *slog.Logger) error {
	cerr := carrier(ctx, link, orDefault(cfg.CarrierWait, DefaultCarrierWait), log)
	var nc *NoCarrierError
	if cerr != nil && !errors.As(cerr, &nc) {
		return cerr
	}
	ack, err := dhcpLease(ctx, link.Name, cfg, log)
	if err != nil {
		return err
	}
	st, lease, err := ConfigFromACK(ack, cfg)
	if err != nil {
		return fmt.Errorf("link %s: %w", link.Name, err)
	}
	lease.Obtained = time.Now()
	st.Device = link.Name // a later boot (B) configures this same NIC
	l, err := netlink.LinkByIndex(link.Index)
	if err != nil {
		return fmt.Errorf("netlink: link %d: %w", link.Index, err)
	}
	if err := apply(l, st); err != nil {
		return err
	}
	link.Config, link.Lease, link.Addr = st, lease, st.Prefix()
	log.Info("netcfg: dhcp lease", "link", link.Name, "addr", link.Addr.String(), "gateway", st.Gateway,
		"dns", st.DNS, "hostname", st.Hostname, "server", lease.Server, "lease", lease.Duration, "until", lease.Expires())
	return cerr
}

// linkUp sets lo up, waits for the device and sets it up.
func linkUp(ctx context.Context, cfg *Config) (netlink.Link, error) {
	if lo, err := netlink.LinkByName("lo"); err != nil {
		return nil, fmt.Errorf("netlink: link lo: %w", err)
	} else if err := netlink.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("netlink: set lo up: %w", err)
	}
	l, err := waitLink(ctx, cfg.Device, orDefault(cfg.LinkWait, DefaultLinkWait))
	if err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("netlink: set %s up: %w", l.Attrs().Name, err)
	}
	return l, nil
}

// apply adds cfg's address, default route and host name to l.
func apply(l netlink.Link, cfg *Config) error {
	a := l.Attrs()
	pfx := cfg.Prefix()
	if err := netlink.AddrReplace(l, &netlink.Addr{IPNet: pfx, Broadcast: broadcast(pfx)}); err != nil {
		return fmt.Errorf("netlink: addr replace %s dev %s: %w", pfx, a.Name, err)
	}
	if cfg.Gateway != nil {
		r := &netlink.Route{
			LinkIndex: a.Index,
			Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			Gw:        cfg.Gateway,
		}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("netlink: route replace default via %s dev %s: %w", cfg.Gateway, a.Name, err)
		}
	}
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fmt.Errorf("sethostname(%q) = %w", cfg.Hostname, err)
		}
	}
	return nil
}

// carrier waits for link's carrier and records it; a *NoCarrierError when
// wait runs out.
func carrier(ctx context.Context, link *Link, wait time.Duration, log *slog.Logger) error {
	start := time.Now()
	state, err := waitCarrier(ctx, link.Index, wait)
	if err != nil {
		return err
	}
	if state != "" {
		log.Warn("netcfg: no carrier", "link", link.Name, "operstate", state, "waited", wait)
		return &NoCarrierError{Link: link.Name, State: state, Wait: wait}
	}
	link.Carrier = true
	log.Info("netcfg: carrier", "link", link.Name, "waited", time.Since(start).Round(time.Millisecond))
	return nil
}

// broadcast is the directed broadcast address of pfx, as the kernel's own
// ip= autoconfiguration sets it; nil for /31 and /32.
func broadcast(pfx *net.IPNet) net.IP {
	if n, _ := pfx.Mask.Size(); n >= 31 {
		return nil
	}
	b := make(net.IP, 4)
	for i := range b {
		b[i] = pfx.IP[i] | ^pfx.Mask[i]
	}
	return b
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// waitLink returns the named link, or the first Ethernet link, polling
// until wait runs out or ctx ends.
func waitLink(ctx context.Context, name string, wait time.Duration) (netlink.Link, error) {
	deadline := time.Now().Add(wait)
	for {
		var l netlink.Link
		var err error
		if name != "" {
			l, err = netlink.LinkByName(name)
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				err = nil
			}
		} else {
			l, err = firstEthernet()
		}
		if err != nil {
			return nil, err
		}
		if l != nil {
			return l, nil
		}
		if time.Now().After(deadline) {
			if name != "" {
				return nil, fmt.Errorf("link %q did not appear within %v (driver module loaded?)", name, wait)
			}
			return nil, fmt.Errorf("no Ethernet link appeared within %v (driver module loaded?)", wait)
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return nil, fmt.Errorf("waiting for link %q: %w", name, err)
		}
	}
}

// firstEthernet returns the non-loopback Ethernet link with a MAC address
// and the lowest index, or nil when there is none yet.
func firstEthernet() (netlink.Link, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("netlink: link list: %w", err)
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Attrs().Index < ls[j].Attrs().Index })
	for _, l := range ls {
		if isEthernet(l) {
			return l, nil
		}
	}
	return nil, nil
}

func isEthernet(l netlink.Link) bool {
	a := l.Attrs()
	if a.Flags&net.FlagLoopback != 0 || a.EncapType != "ether" || len(a.HardwareAddr) != 6 {
		return false
	}
	switch l.Type() {
	case "bridge", "bond", "vlan", "macvlan", "macvtap", "ipvlan", "vxlan", "dummy", "tuntap":
		return false
	}
	for _, b := range a.HardwareAddr {
		if b != 0 {
			return true
		}
	}
	return false
}

// carrierPollEvery is how often waitCarrier looks: a NIC's carrier is
// the last thing before the DHCP exchange, and a look is one netlink
// request.
const carrierPollEvery = 20 * time.Millisecond

// hasCarrier reports whether a link with this operational state and these
// flags has carrier. IFF_LOWER_UP is the driver's carrier bit as the
// kernel reads it at each request; the operational state follows it
// through the kernel's linkwatch, which holds a carrier that came while
// the link was down (the NIC's driver had just probed it) for up to a
// second: linkwatch handles such events in one batch a second. That cost
// image A 0.93 s under TCG on Debian's 6.1 (virtio_net's carrier came
// before ferry set the link up, which the operational state said a second
// later). Packets go out at once: setting a link up whose carrier is
// there activates its queue, and a carrier that comes while the link is
// up is an urgent linkwatch event, handled without the wait. A link that
// reports dormant (waiting for 802.1X, say) has no usable carrier.
func hasCarrier(oper netlink.LinkOperState, rawFlags uint32) bool {
	if oper == netlink.OperUp {
		return true
	}
	if rawFlags&unix.IFF_LOWER_UP == 0 || rawFlags&unix.IFF_DORMANT != 0 {
		return false
	}
	return oper != netlink.OperDormant && oper != netlink.OperTesting
}

// waitCarrier polls the link until it has carrier (hasCarrier); it returns
// "" then, or the last operational state when wait runs out.
func waitCarrier(ctx context.Context, index int, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := netlink.LinkByIndex(index)
		if err != nil {
			return "", fmt.Errorf("netlink: link %d: %w", index, err)
		}
		a := l.Attrs()
		if hasCarrier(a.OperState, a.RawFlags) {
			return "", nil
		}
		if time.Now().After(deadline) {
			return a.OperState.String(), nil
		}
		if err := sleep(ctx, carrierPollEvery); err != nil {
			return "", fmt.Errorf("waiting for carrier on %s: %w", a.Name, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

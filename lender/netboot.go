package lender

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"ferry/api"
	"ferry/configfile"
	"ferry/netboot"
)

// NetbootConfig is the optional "netboot" section of the lender config:
// where to serve DHCP/ProxyDHCP, TFTP and HTTP, and image A's files.
type NetbootConfig struct {
	Interface string   `json:"interface"`
	ServerIP  string   `json:"server_ip"`
	Mode      string   `json:"mode"` // dhcp or proxydhcp
	PoolFirst string   `json:"pool_first"`
	PoolLast  string   `json:"pool_last"`
	Prefix    string   `json:"prefix"`
	Router    string   `json:"router"` // dhcp mode: the default gateway offered (option 3); image A needs it to reach a gateway off this net
	DNS       []string `json:"dns"`    // dhcp mode: DNS servers offered (option 6); recorded by image A, not used
	HTTPAddr  string   `json:"http_addr"`
	TFTPRoot  string   `json:"tftp_root"`
	// BIOSFile and EFIFile name the iPXE builds under tftp_root (default
	// undionly.kpxe and ipxe.efi); snponly.efi drives the NIC through the
	// firmware's own driver, for NICs iPXE has no driver of its own for.
	BIOSFile string `json:"bios_file"`
	EFIFile  string `json:"efi_file"`
	KernelA  string `json:"kernel_a"`
	InitrdA  string `json:"initrd_a"`
	Cmdline  string `json:"cmdline"` // console options before the lease's parameters
	// DHCPLeaseTime is the lease the DHCP server grants (dhcp mode).
	// Image A takes its address by DHCP and image B keeps it for the whole
	// lending without renewing, so the default is the longest lending
	// (api.MaxDuration); a shorter one risks the address going to another
	// machine while B still uses it, and A warns on its console then.
	DHCPLeaseTime Duration `json:"dhcp_lease_time"`
}

// cmdlineFor is image A's command line: the configured options, the
// lease's bootstrap parameters, and ip=dhcp unless the options carry an
// ip= of their own (a lab that wants a static address).
func (c NetbootConfig) cmdlineFor(params string) string {
	s := strings.TrimSpace(c.Cmdline + " " + params)
	for _, f := range strings.Fields(c.Cmdline) {
		if strings.HasPrefix(f, "ip=") {
			return s
		}
	}
	return s + " ip=dhcp"
}

// routerDNS parses router (inside prefix, optional) and dns.
func (c NetbootConfig) routerDNS(prefix netip.Prefix) (netip.Addr, []netip.Addr, error) {
	var r netip.Addr
	if c.Router != "" {
		var err error
		if r, err = netip.ParseAddr(c.Router); err != nil || !prefix.Contains(r) {
			return r, nil, fmt.Errorf("netboot.router %q: want an IPv4 address inside prefix %s", c.Router, prefix)
		}
	}
	var dns []netip.Addr
	for i, d := range c.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil || !a.Is4() {
			return r, nil, fmt.Errorf("netboot.dns[%d] %q: want an IPv4 address", i, d)
		}
		dns = append(dns, a)
	}
	return r, dns, nil
}

// leaseTime is DHCPLeaseTime or its default.
func (c NetbootConfig) leaseTime() time.Duration {
	if c.DHCPLeaseTime <= 0 {
		return api.MaxDuration * time.Second
	}
	return time.Duration(c.DHCPLeaseTime)
}

// policy answers netboot for the lender: only servers with a pending
// boot are admitted, and every iPXE script gets a fresh token.
type policy struct {
	m    *Manager
	cfg  NetbootConfig
	live *atomic.Pointer[NetbootConfig] // when set, replaces cfg: a reload may change image A's files and options
}

func (p policy) conf() NetbootConfig {
	if p.live != nil {
		return *p.live.Load()
	}
	return p.cfg
}

// Admit lets a MAC netboot only while a lease has a boot of it. A
// refusal is logged here, at Info, because netboot's own silence is a
// Debug line: an operator must see why a machine gets no offer. Once the
// boot has enrolled, the server runs image B and then the borrower's
// root, whose DHCP client (systemd-networkd, dhclient, NetworkManager)
// asks and renews for the whole lease: it gets the address image A
// holds and never another, so it neither gives the interface up nor
// moves to another address under the tunnel and the NFS root. Its PXE
// ROM still gets the boot file: another boot's script fetch must reach
// the lender to be seen as the conflict it is.
func (p policy) Admit(_ context.Context, mac net.HardwareAddr) error {
	ok, enrolled := p.m.admitted(mac.String())
	switch {
	case !ok:
		p.m.log.Info("netboot: no pending boot, not answering", "mac", mac.String())
		return netboot.ErrUnknownMachine
	case enrolled:
		return fmt.Errorf("%w: %s is enrolled: it keeps its address", netboot.ErrHeldAddressOnly, mac)
	}
	return nil
}

// Boot serves the one script of a boot: it binds the boot's token to what
// netboot observed and returns image A with the bootstrap parameters.
func (p policy) Boot(ctx context.Context, f netboot.Fetch) (*netboot.BootSpec, error) {
	b, err := p.m.fetchScript(ctx, f)
	if err != nil {
		return nil, err
	}
	if b.Token == "" {
		// A boot resumed after a restart: its token lived in the dead
		// process; this fetch is the second of the boot.
		return nil, fmt.Errorf("%w: token of this boot not held", netboot.ErrRefused)
	}
	c := p.conf()
	return &netboot.BootSpec{Kernel: netboot.Artifact{Path: c.KernelA}, Initrd: netboot.Artifact{Path: c.InitrdA},
		Cmdline: c.cmdlineFor(b.KernelParam)}, nil
}

// netbootServer builds netboot's server from the config section.
func netbootServer(m *Manager, c NetbootConfig) (*netboot.Server, error) {
	live := &atomic.Pointer[NetbootConfig]{}
	live.Store(&c)
	return netbootServerLive(m, live)
}

// netbootServerLive is netbootServer whose image A a reload may change.
func netbootServerLive(m *Manager, live *atomic.Pointer[NetbootConfig]) (*netboot.Server, error) {
	c := *live.Load()
	ip, err := netip.ParseAddr(c.ServerIP)
	if err != nil {
		return nil, fmt.Errorf("netboot.server_ip: %w", err)
	}
	mode, err := netboot.ParseMode(c.Mode)
	if err != nil {
		return nil, fmt.Errorf("netboot.mode: %w", err)
	}
	cfg := netboot.Config{Interface: c.Interface, ServerIP: ip, Mode: mode, HTTPAddr: c.HTTPAddr,
		TFTPRoot: c.TFTPRoot, BIOSFile: c.BIOSFile, EFIFile: c.EFIFile, Log: m.log, Leases: dhcpLeases{st: m.st, log: m.log},
		Events: m.metrics}
	if mode == netboot.ModeDHCP {
		first, err1 := netip.ParseAddr(c.PoolFirst)
		last, err2 := netip.ParseAddr(c.PoolLast)
		prefix, err3 := netip.ParsePrefix(c.Prefix)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("netboot: dhcp mode needs pool_first, pool_last and prefix: %v %v %v", err1, err2, err3)
		}
		cfg.Pool = netboot.Pool{First: first, Last: last, Prefix: prefix, LeaseTime: c.leaseTime()}
		if cfg.Pool.Router, cfg.Pool.DNS, err = c.routerDNS(prefix); err != nil {
			return nil, err
		}
		if lt := c.leaseTime(); lt < api.MaxDuration*time.Second {
			m.log.Warn("netboot: dhcp leases shorter than the longest lending: nothing renews them in B", "dhcp_lease_time", lt,
				"longest_lending", time.Duration(api.MaxDuration)*time.Second)
		}
	}
	m.netboot = true // tokens are bound at the script fetch: enrollment requires it
	return netboot.New(cfg, policy{m: m, live: live})
}

// check records every problem of the netboot section in r.
func (c NetbootConfig) check(r *configfile.Report) {
	r.Required(map[string]string{"netboot.interface": c.Interface, "netboot.server_ip": c.ServerIP,
		"netboot.kernel_a": c.KernelA, "netboot.initrd_a": c.InitrdA})
	if c.ServerIP != "" {
		if a, err := netip.ParseAddr(c.ServerIP); err != nil || !a.Is4() {
			r.Errorf("netboot.server_ip", c.ServerIP, "want this host's IPv4 address on the interface")
		}
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			r.Errorf("netboot.http_addr", c.HTTPAddr, "want ADDRESS:PORT (default server_ip:8080)")
		}
	}
	if c.DHCPLeaseTime < 0 {
		r.Errorf("netboot.dhcp_lease_time", time.Duration(c.DHCPLeaseTime).String(), "want a positive duration")
	}
	mode, err := netboot.ParseMode(c.Mode)
	if err != nil {
		r.Errorf("netboot.mode", c.Mode, "want dhcp (ferry hands out the addresses) or proxydhcp (the network's DHCP server does)")
		return
	}
	dhcpOnly := map[string]bool{"pool_first": c.PoolFirst != "", "pool_last": c.PoolLast != "", "prefix": c.Prefix != "",
		"router": c.Router != "", "dns": len(c.DNS) > 0}
	if mode == netboot.ModeProxyDHCP {
		for _, k := range []string{"pool_first", "pool_last", "prefix", "router", "dns"} {
			if dhcpOnly[k] {
				r.Errorf("netboot."+k, nil, "set but mode is proxydhcp, which hands out no addresses: want mode dhcp, or remove it")
			}
		}
		return
	}
	prefix, err := netip.ParsePrefix(c.Prefix)
	if err != nil || !prefix.Addr().Is4() {
		r.Errorf("netboot.prefix", c.Prefix, "want the IPv4 subnet of the pool, e.g. 10.0.0.0/24 (mode dhcp)")
		return
	}
	prefix = prefix.Masked()
	for _, f := range [][2]string{{"netboot.pool_first", c.PoolFirst}, {"netboot.pool_last", c.PoolLast}} {
		if a, err := netip.ParseAddr(f[1]); err != nil || !prefix.Contains(a) {
			r.Errorf(f[0], f[1], "want an IPv4 address inside prefix %s (mode dhcp)", prefix)
		}
	}
	if f, l := parseAddr(c.PoolFirst), parseAddr(c.PoolLast); f.IsValid() && l.IsValid() {
		if l.Less(f) {
			r.Errorf("netboot.pool_last", c.PoolLast, "want an address at or after pool_first %s", c.PoolFirst)
		}
	}
	if _, _, err := c.routerDNS(prefix); err != nil {
		r.Add("", err)
	}
}

func parseAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}

// NetbootServer is netboot's server answering for this manager with
// config c, not yet serving: Serve runs it, and a caller that drives it
// without a link (a relay, a load generator) calls its Answer and Handler.
func (m *Manager) NetbootServer(c NetbootConfig) (*netboot.Server, error) {
	return netbootServer(m, c)
}

package netboot

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Mode selects how the server speaks DHCP.
type Mode int

const (
	// ModeDHCP hands out addresses from Config.Pool and the boot options.
	ModeDHCP Mode = iota + 1
	// ModeProxyDHCP leaves addresses to the network's own DHCP server and
	// adds only the PXE boot options (on port 67 and on port 4011).
	ModeProxyDHCP
)

// Default paths of Debian's ipxe package.
const (
	DefaultTFTPRoot = "/usr/lib/ipxe"
	DefaultBIOSFile = "undionly.kpxe"
	DefaultEFIFile  = "ipxe.efi"
)

// Pool is the address range handed out in ModeDHCP.
type Pool struct {
	First, Last netip.Addr   // inclusive range, inside Prefix
	Prefix      netip.Prefix // the subnet (its mask is sent as option 1)
	Router      netip.Addr   // option 3; zero to leave out
	DNS         []netip.Addr // option 6
	LeaseTime   time.Duration
}

// Config is what a Server needs. Zero fields take the documented defaults.
type Config struct {
	// Interface is the link the DHCP server binds to (required).
	Interface string
	// ServerIP is this host's address on Interface: DHCP server identifier,
	// next-server for TFTP, and the host of the default HTTP URL.
	ServerIP netip.Addr
	Mode     Mode
	Pool     Pool // ModeDHCP only
	// Leases keeps acknowledged leases across restarts (ModeDHCP; default
	// NewMemLeases, which does not).
	Leases Leases
	// Events hears each DHCP request and transfer (metrics); nil: none.
	Events Events
	// HTTPAddr is where the HTTP server listens (default ServerIP:8080).
	HTTPAddr string
	// HTTPBase is the URL iPXE uses to reach HTTPAddr (default
	// http://HTTPAddr).
	HTTPBase string
	// TFTPAddr is where the TFTP server listens (default ServerIP:69).
	TFTPAddr string
	// TFTPRoot holds the iPXE binaries (default DefaultTFTPRoot).
	TFTPRoot          string
	BIOSFile, EFIFile string        // file names under TFTPRoot
	URLLifetime       time.Duration // sealed URL validity (default 5 min)
	// HTTPStall cuts an HTTP answer that moves no byte for this long
	// (default 30 s). It is a bound on stalls, not on whole downloads: a
	// 30 MB initrd over a slow link takes as long as it takes while it
	// moves.
	HTTPStall          time.Duration
	MaxLeases, MaxBoot int // state bounds (default 4096 each)
	Log                *slog.Logger
}

func (m Mode) String() string {
	switch m {
	case ModeDHCP:
		return "dhcp"
	case ModeProxyDHCP:
		return "proxydhcp"
	}
	return "invalid"
}

// ParseMode reads "dhcp" or "proxydhcp".
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{ModeDHCP, ModeProxyDHCP} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("netboot: mode %q: want dhcp or proxydhcp", s)
}

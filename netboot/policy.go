// Package netboot serves the PXE chain that boots image A on a lent server:
// DHCPv4 (server or ProxyDHCP mode) that chainloads iPXE, a read-only TFTP
// server for the iPXE binaries, and an HTTP server for the per-boot iPXE
// script and the kernel and initrd behind sealed, expiring URLs.
//
// What a machine boots is not decided here: a Policy (implemented by the
// lender manager) answers that, pixiecore-style, so the protocol machinery is
// testable with a fake policy and the policy with no network at all.
package netboot

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
)

// ErrUnknownMachine is returned by a Policy for a MAC it will not boot. The
// DHCP side then makes no offer at all, and the HTTP side refuses the script.
var ErrUnknownMachine = errors.New("unknown machine")

// ErrRefused is returned (wrapped) by a Policy that knows the machine but
// refuses this script request: the HTTP side answers 403.
var ErrRefused = errors.New("refused")

// ErrHeldAddressOnly is returned (wrapped) by a Policy for a machine that
// keeps the address this server gave it and must get no other: a lent
// server running the borrower's system, whose DHCP client asks and
// renews. The DHCP side then offers only the address the MAC holds (a MAC
// holding none gets no offer); a PXE ROM or iPXE still gets its boot
// options, so that another boot reaches the Policy's Boot, which decides
// (the lender sees a second script fetch as a conflict). ProxyDHCP gives
// no addresses: there it is the same as nil.
var ErrHeldAddressOnly = errors.New("held address only")

// Fetch is what this server observed of one script request: the MAC the
// sealed URL was made for, the address its DHCP leased to that MAC when it
// handed out the URL (ModeDHCP; invalid in ModeProxyDHCP, where another
// server gives the addresses) and the address the request came from.
// Nothing in it is what the client claims: the URL is sealed, the source
// address is the connection's.
type Fetch struct {
	MAC    net.HardwareAddr
	Leased netip.Addr
	From   netip.Addr
}

// Policy decides what a machine boots. Implementations must be safe for
// concurrent use.
type Policy interface {
	// Admit reports whether mac may netboot: nil to answer its DHCP
	// packets, ErrHeldAddressOnly to offer it its held address only,
	// ErrUnknownMachine (or any other error) to stay silent. It is
	// called for every DHCP packet, so it must be cheap and free of side
	// effects.
	Admit(ctx context.Context, mac net.HardwareAddr) error
	// Boot returns what f.MAC boots now, or ErrUnknownMachine, or an
	// error wrapping ErrRefused. It is called for every script request,
	// and iPXE fetches its script once per boot, so it may mint one-time
	// parameters (an enrollment token) for the command line, and it is
	// where a policy refuses a second fetch in one boot or a fetch from
	// another address than f.Leased: this server serves whatever URL it
	// sealed, as often as it is asked, from any address.
	Boot(ctx context.Context, f Fetch) (*BootSpec, error)
}

// BootSpec is one boot of image A.
type BootSpec struct {
	Kernel Artifact
	Initrd Artifact
	// Cmdline is A's kernel command line: the bootstrap parameters
	// (lender URL, CA fingerprint, enrollment token) plus console options.
	// It must not contain newlines or NULs.
	Cmdline string
}

// Artifact is a file served to the machine over HTTP. Set Path for a local
// file, or Open for bytes that live elsewhere; Open wins when both are set.
type Artifact struct {
	Path string
	Open func(ctx context.Context) (io.ReadCloser, error)
}

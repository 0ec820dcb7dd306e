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
)

// ErrUnknownMachine is returned by a Policy for a MAC it will not boot. The
// DHCP side then makes no offer at all, and the HTTP side refuses the script.
var ErrUnknownMachine = errors.New("unknown machine")

// Policy decides what a machine boots. Implementations must be safe for
// concurrent use.
type Policy interface {
	// Admit reports whether mac may netboot: nil to answer its DHCP
	// packets, ErrUnknownMachine (or any error) to stay silent. It is
	// called for every DHCP packet, so it must be cheap and free of side
	// effects.
	Admit(ctx context.Context, mac net.HardwareAddr) error
	// Boot returns what mac boots now, or ErrUnknownMachine. It is called
	// once per iPXE script request, that is once per boot, so it may mint
	// one-time parameters (an enrollment token) for the command line.
	Boot(ctx context.Context, mac net.HardwareAddr) (*BootSpec, error)
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

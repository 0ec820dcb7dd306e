// Package dataplane is the contract between ferry's IKEv2 state machine and
// the code that moves ESP packets. The IKE daemon negotiates CHILD_SAs and
// hands each one to a DataPlane; the data plane encrypts, decrypts, counts
// and reports when an SA's lifetime runs out.
//
// Two implementations exist: ipsec/xfrm (the kernel's XFRM through netlink,
// the default wherever the kernel has ESP) and ipsec/esp (RFC 4303 ESP in
// user space over a TUN device, for kernels without ESP, as strongSwan's
// kernel-libipsec does).
//
// # Sharing UDP port 4500
//
// With NAT traversal (RFC 3948) IKE and ESP share one UDP socket on port
// 4500. The IKE daemon owns that socket. Packets whose first four bytes are
// zero (the non-ESP marker) are IKE; anything else is ESP, except the single
// byte 0xFF which is a NAT-T keepalive. Use Classify on every datagram read
// from port 4500: give IKE messages (marker stripped) to the state machine
// and pass ESP datagrams to the data plane:
//
//   - ipsec/xfrm: the kernel demultiplexes by itself once the socket has the
//     UDP_ENCAP_ESPINUDP option; the daemon calls BypassSocket(fd) so that
//     its own IKE packets are not caught by the tunnel policy.
//   - ipsec/esp: the daemon gives the data plane the socket (esp.Config.Conn)
//     to send on, and lets the plane's ServeUDP read it (batched, with
//     UDP_GRO), which hands the IKE messages back to the daemon.
//     BypassSocket is a no-op there (user space sends IKE directly).
package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// NATTPort is the UDP port of IKE and UDP-encapsulated ESP (RFC 3948).
const NATTPort = 4500

// AlgAES256GCM16 is the only AEAD ferry speaks today: AES-256 in GCM with a
// 16-byte ICV (RFC 4106); the key is 32 bytes followed by a 4-byte salt.
const AlgAES256GCM16 = "aes256gcm16"

// DefaultReplayWindow is the anti-replay window used when ChildSA leaves it
// zero. Zero never means "off": the netlink library's zero default silently
// disables anti-replay, which is why this contract fills it in.
const DefaultReplayWindow = 128

// Lifetime bounds one direction of a CHILD_SA. Zero fields are unlimited.
// Soft limits ask for a rekey; hard limits delete the SA.
type Lifetime struct {
	SoftBytes, HardBytes     uint64
	SoftPackets, HardPackets uint64
	SoftTime, HardTime       time.Duration
}

// ChildSA is one negotiated CHILD_SA pair (inbound and outbound), in tunnel
// mode. Local and Remote are the outer addresses; with Encap they carry the
// UDP ports (normally NATTPort on both, or the NAT-mapped port).
type ChildSA struct {
	InSPI, OutSPI uint32
	Local, Remote netip.AddrPort
	Encap         bool   // UDP encapsulation (RFC 3948); ipsec/esp requires it
	Alg           string // AlgAES256GCM16
	// InKey and OutKey are key||salt (36 bytes for aes256gcm16), from
	// KEYMAT: InKey decrypts what the peer sends, OutKey encrypts.
	InKey, OutKey []byte
	// TSLocal and TSRemote are the narrowed traffic selectors (inner
	// addresses); only protocol "any" and all ports are supported.
	TSLocal, TSRemote []netip.Prefix
	// VirtualIP is this host's inner address from the configuration
	// payload (initiator side); the zero Prefix means none.
	VirtualIP    netip.Prefix
	ReplayWindow uint32 // packets; 0 means DefaultReplayWindow
	ESN          bool   // 64-bit extended sequence numbers (RFC 4303 2.2.1)
	Lifetime     Lifetime
	// ReqID ties the states and policies of one CHILD_SA together in the
	// kernel; 0 lets the data plane choose one.
	ReqID uint32
	// Deferred is set by the responder of a CHILD_SA rekey: the peer
	// installs the SA only when our answer reaches it, so sending on it
	// at once would lose packets for a round trip. The data plane keeps
	// sending on the older SA of the same selectors until ESP arrives on
	// this one or no older one remains (strongSwan does the same). The
	// kernel plane ignores it (the kernel sends on the newest state).
	Deferred bool
}

// ExpireKind says which lifetime ran out.
type ExpireKind int

const (
	// Soft: rekey now (CREATE_CHILD_SA); the SA keeps working.
	Soft ExpireKind = iota + 1
	// Hard: the SA is gone; the data plane has removed it.
	Hard
)

func (k ExpireKind) String() string {
	switch k {
	case Soft:
		return "soft"
	case Hard:
		return "hard"
	}
	return "unknown"
}

// ExpireEvent reports that one SA (by SPI and direction) reached a limit.
// Sequence-number exhaustion on the outbound SA is reported as Soft when
// close and Hard when the counter would wrap (RFC 4303 3.3.3).
type ExpireEvent struct {
	SPI     uint32
	Inbound bool
	Kind    ExpireKind
	Reason  string // "bytes", "packets", "time", "sequence", or the kernel's
}

// ErrNoSuchSA: the data plane has no CHILD_SA with the SPIs asked about.
var ErrNoSuchSA = errors.New("no such SA installed")

// SACounters are one CHILD_SA's traffic since it was installed: inner
// (plaintext) packets and bytes, as the lifetime limits count them. In
// counts what arrived, authenticated and passed the replay check; Out what
// was sealed and sent.
type SACounters struct {
	InPackets, InBytes   uint64
	OutPackets, OutBytes uint64
}

// DataPlane installs and removes CHILD_SAs. Implementations are safe for
// concurrent use.
type DataPlane interface {
	// Install adds both directions of sa (and the routes or policies for
	// its traffic selectors). Installing an SPI that exists fails.
	Install(ctx context.Context, sa ChildSA) error
	// Remove deletes both directions; removing unknown SPIs is not an error.
	Remove(ctx context.Context, inSPI, outSPI uint32) error
	// Counters returns the traffic of the CHILD_SA with these SPIs (as
	// given to Install). An SA that is not installed is an error.
	Counters(ctx context.Context, inSPI, outSPI uint32) (SACounters, error)
	// Expire delivers lifetime events; it is closed by Close.
	Expire() <-chan ExpireEvent
	// BypassSocket exempts the IKE socket fd from IPsec policies.
	BypassSocket(fd uintptr) error
	// Guard makes the host fail closed towards the remote prefixes for
	// the rest of the lease, whether or not an SA carries them: packets
	// to them never leave in clear, and packets from them arriving in
	// clear are dropped. Install guards each SA's remote selectors by
	// itself; call Guard early (before the first SA) for what the
	// configuration already names. A prefix holding peer (the gateway's
	// outer address; may be the zero Addr) is not guarded, since blocking
	// it would cut the tunnel's own path.
	Guard(ctx context.Context, remote []netip.Prefix, peer netip.Addr) error
	// Close removes every SA this data plane installed and stops it. It
	// leaves the lease's fail-closed state on the host (see Guard): what
	// Install and Guard put in to keep traffic from leaving in clear
	// outlives the SAs and the process, on purpose.
	Close() error
	// Teardown is the deliberate end of the lease: Close, then remove the
	// fail-closed state too. Nothing else removes it.
	Teardown(ctx context.Context) error
}

package keeper

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ferry/ipsec/xfrm"
)

// probeAEAD is the AEAD of every CHILD_SA ferry negotiates (ipsec/xfrm).
const probeAEAD = "rfc4106(gcm(aes))"

// openKernelPlane returns the XFRM data plane once the kernel has shown
// that it can build the tunnel's ESP states.
func openKernelPlane(ctx context.Context, log *slog.Logger) (*xfrm.Plane, error) {
	if err := probeESP(); err != nil {
		return nil, err
	}
	return xfrm.New(ctx, xfrm.Config{Log: log})
}

// probeESP adds one ESP state shaped like the tunnel's (tunnel mode,
// rfc4106(gcm(aes)) with seqiv, ESP-in-UDP) between two TEST-NET-1
// addresses and deletes it at once. Building it makes the kernel
// instantiate esp4, the AEAD and seqiv's RNG, the parts a kernel without
// ESP (or without drbg) lacks; nothing stays installed and no packet is
// sent.
func probeESP() error {
	h, err := netlink.NewHandle(unix.NETLINK_XFRM)
	if err != nil {
		return fmt.Errorf("xfrm netlink socket: %w", err)
	}
	defer h.Close()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	st := &netlink.XfrmState{
		Src: net.IPv4(192, 0, 2, 1), Dst: net.IPv4(192, 0, 2, 2), Proto: netlink.XFRM_PROTO_ESP,
		Mode: netlink.XFRM_MODE_TUNNEL, Spi: int(binary.BigEndian.Uint32(b[:]) | 0x100),
		Aead:  &netlink.XfrmStateAlgo{Name: probeAEAD, Key: make([]byte, 36), ICVLen: 128},
		Encap: &netlink.XfrmStateEncap{Type: netlink.XFRM_ENCAP_ESPINUDP, SrcPort: 4500, DstPort: 4500, OriginalAddress: net.IPv4zero},
	}
	if err := h.XfrmStateAdd(st); err != nil {
		return fmt.Errorf("probe state %s ESP-in-UDP 192.0.2.1 -> 192.0.2.2: %w (%w)", probeAEAD, err, xfrm.ErrNoESP)
	}
	if err := h.XfrmStateDel(st); err != nil {
		return fmt.Errorf("deleting probe state SPI %#x: %w", uint32(st.Spi), err)
	}
	return nil
}

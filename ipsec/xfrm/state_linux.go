package xfrm

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"

	"ferry/ipsec/dataplane"
)

// aeadName is the kernel's name for AES-GCM with a 4-byte salt (RFC 4106).
const aeadName = "rfc4106(gcm(aes))"

// maxLegacyWindow: without ESN the library writes the window into
// xfrm_usersa_info.replay_window only (no XFRMA_REPLAY_ESN_VAL), and the
// kernel silently clamps that to its 32-bit legacy bitmap
// (net/xfrm/xfrm_user.c copy_from_user_state: min(replay_window,
// sizeof(x->replay.bitmap) * 8)). Seen in the QEMU guest against
// strongSwan (no ESN): asked for 128, `ip xfrm state` showed 32. Larger
// windows need ESN's replay_esn.
const maxLegacyWindow = 32

func ip(a netip.Addr) net.IP { return a.AsSlice() }

func ipnet(p netip.Prefix) *net.IPNet {
	p = p.Masked()
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// replayWindow resolves the window a state gets: never 0 (0 disables
// anti-replay in the kernel), and never more than the kernel keeps.
func replayWindow(sa dataplane.ChildSA) (int, error) {
	w := sa.ReplayWindow
	if w == 0 {
		w = dataplane.DefaultReplayWindow
		if !sa.ESN {
			w = min(w, maxLegacyWindow) // the most the kernel keeps without ESN
		}
	}
	if !sa.ESN && w > maxLegacyWindow {
		return 0, fmt.Errorf("xfrm: SA %#x: replay window %d needs ESN (max %d without)", sa.InSPI, w, maxLegacyWindow)
	}
	if w > 4096 {
		return 0, fmt.Errorf("xfrm: SA %#x: replay window %d exceeds 4096", sa.InSPI, w)
	}
	return int(w), nil
}

// states builds the inbound and outbound XFRM states of sa.
func states(sa dataplane.ChildSA, reqid int) (in, out *netlink.XfrmState, err error) {
	if sa.Alg != dataplane.AlgAES256GCM16 {
		return nil, nil, fmt.Errorf("xfrm: SA %#x: algorithm %q: only %s", sa.InSPI, sa.Alg, dataplane.AlgAES256GCM16)
	}
	if len(sa.InKey) != 36 || len(sa.OutKey) != 36 {
		return nil, nil, fmt.Errorf("xfrm: SA %#x: keys %d/%d bytes, want 36 (key||salt)", sa.InSPI, len(sa.InKey), len(sa.OutKey))
	}
	if !sa.Local.Addr().Is4() || !sa.Remote.Addr().Is4() {
		return nil, nil, fmt.Errorf("xfrm: SA %#x: outer %v -> %v: IPv4 only", sa.InSPI, sa.Local, sa.Remote)
	}
	w, err := replayWindow(sa)
	if err != nil {
		return nil, nil, err
	}
	mk := func(spi uint32, src, dst netip.AddrPort, key []byte) *netlink.XfrmState {
		s := &netlink.XfrmState{
			Src: ip(src.Addr()), Dst: ip(dst.Addr()), Proto: netlink.XFRM_PROTO_ESP,
			Mode: netlink.XFRM_MODE_TUNNEL, Spi: int(spi), Reqid: reqid,
			Aead:         &netlink.XfrmStateAlgo{Name: aeadName, Key: append([]byte(nil), key...), ICVLen: 128},
			ReplayWindow: w, ESN: sa.ESN, Limits: limits(sa.Lifetime),
		}
		if sa.Encap {
			s.Encap = &netlink.XfrmStateEncap{Type: netlink.XFRM_ENCAP_ESPINUDP,
				SrcPort: int(src.Port()), DstPort: int(dst.Port()), OriginalAddress: net.IPv4zero}
		}
		return s
	}
	return mk(sa.InSPI, sa.Remote, sa.Local, sa.InKey), mk(sa.OutSPI, sa.Local, sa.Remote, sa.OutKey), nil
}

func limits(l dataplane.Lifetime) netlink.XfrmStateLimits {
	inf := func(v uint64) uint64 {
		if v == 0 {
			return ^uint64(0)
		}
		return v
	}
	return netlink.XfrmStateLimits{
		ByteSoft: inf(l.SoftBytes), ByteHard: inf(l.HardBytes),
		PacketSoft: inf(l.SoftPackets), PacketHard: inf(l.HardPackets),
		TimeSoft: secs(l.SoftTime), TimeHard: secs(l.HardTime),
	}
}

func secs(d time.Duration) uint64 {
	if d <= 0 {
		return 0 // the kernel's "no limit" for time
	}
	return uint64((d + time.Second - 1) / time.Second)
}

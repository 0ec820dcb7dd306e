package netnstest

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Sniffer sees the IPv4 packets one link of a namespace sends, as tcpdump
// would: what goes on the wire, whatever a socket above makes of it. Only
// outgoing packets count: a received ESP packet in tunnel mode comes
// back through the same link decrypted (xfrm_input re-injects the inner
// packet), which a sniffer on the receiving side would take for clear
// text on the wire.
type Sniffer struct {
	fd   int
	link string
}

// Sniff opens a packet socket on link in ns (the sender's side of the
// wire to watch); it closes at cleanup.
func (ns *NS) Sniff(t testing.TB, link string) *Sniffer {
	t.Helper()
	var s *Sniffer
	ns.Do(t, func() {
		l, err := net.InterfaceByName(link)
		if err != nil {
			t.Fatalf("in %s: sniff %s: %v", ns.Name, link, err)
		}
		// ETH_P_ALL: only taps of every protocol see outgoing packets
		// (dev_queue_xmit_nit).
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			t.Fatalf("in %s: packet socket: %v", ns.Name, err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: l.Index}); err != nil {
			unix.Close(fd)
			t.Fatalf("in %s: bind packet socket to %s: %v", ns.Name, link, err)
		}
		s = &Sniffer{fd: fd, link: link}
	})
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// CountUntil reads packets until one to marker leaves and returns how
// many before it went to an address in dst. Send the marker after the
// packets under test, on the same link: it leaves after them, so no
// waiting on a clock decides the count. It fails t if the marker has not
// arrived within a minute.
func (s *Sniffer) CountUntil(t testing.TB, dst netip.Prefix, marker netip.Addr) int {
	t.Helper()
	tv := unix.NsecToTimeval(int64(time.Minute))
	if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	n := 0
	buf := make([]byte, 65536)
	for {
		m, from, err := unix.Recvfrom(s.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("sniffing %s: marker to %v never came: %v", s.link, marker, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype != unix.PACKET_OUTGOING || ll.Protocol != htons(unix.ETH_P_IP) || m < 20 || buf[0]>>4 != 4 {
			continue
		}
		to := netip.AddrFrom4([4]byte(buf[16:20]))
		switch {
		case to == marker:
			return n
		case dst.Contains(to):
			n++
			t.Logf("on %s in clear: %v -> %v proto %d (%d bytes)", s.link,
				netip.AddrFrom4([4]byte(buf[12:16])), to, buf[9], binary.BigEndian.Uint16(buf[2:]))
		}
	}
}

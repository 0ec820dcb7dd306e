package esp

import (
	"encoding/binary"
	"fmt"
)

// TCP flag bits (RFC 9293).
const (
	tcpFIN = 0x01
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpCWR = 0x80
)

// tsoLayout says how a packet read from the TUN device (header h) will be
// cut: into count inner packets, each segLen bytes but the last, which may
// be shorter. A packet without GSO is one segment of its own length.
func tsoLayout(h vnetHdr, pkt []byte) (count, segLen int, err error) {
	if h.gsoType == vnetGSONone {
		return 1, len(pkt), nil
	}
	if h.gsoType != vnetGSOTCPv4 {
		return 0, 0, fmt.Errorf("tun: gso type %d: only TCPv4 (1) was offered to the kernel", h.gsoType)
	}
	_, hl, err := tcp4Headers(pkt)
	if err != nil {
		return 0, 0, err
	}
	mss, payload := int(h.gsoSize), len(pkt)-hl
	if mss == 0 {
		return 0, 0, fmt.Errorf("tun: TCPv4 super-segment of %d bytes with gso size 0", len(pkt))
	}
	if payload <= mss {
		return 1, len(pkt), nil
	}
	return (payload + mss - 1) / mss, hl + mss, nil
}

// tcp4Headers returns the IPv4 header length and the IPv4+TCP header
// length of pkt, checking that both fit.
func tcp4Headers(pkt []byte) (ihl, hl int, err error) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != protoTCP {
		return 0, 0, fmt.Errorf("tun: %d-byte GSO packet is not IPv4/TCP", len(pkt))
	}
	ihl = int(pkt[0]&0xf) * 4
	if ihl < 20 || len(pkt) < ihl+20 {
		return 0, 0, fmt.Errorf("tun: %d-byte GSO packet: IPv4 header length %d", len(pkt), ihl)
	}
	hl = ihl + int(pkt[ihl+12]>>4)*4
	if hl < ihl+20 || len(pkt) < hl {
		return 0, 0, fmt.Errorf("tun: %d-byte GSO packet: headers %d bytes", len(pkt), hl)
	}
	return ihl, hl, nil
}

// tsoSplit is TCP segmentation in user space: it cuts pkt as tsoLayout
// said, writing segment i, n bytes long, to dst(i, n), and completes
// every checksum, so each inner packet is a standalone valid IPv4 packet
// for any ESP peer. The kernel's own TSO does the same (per-segment IP ID,
// sequence number, FIN/PSH on the last segment only, CWR on the first).
func tsoSplit(h vnetHdr, pkt []byte, dst func(i, n int) []byte) (int, error) {
	if h.gsoType == vnetGSONone {
		if h.flags&vnetNeedsCsum != 0 {
			cs, co := int(h.csumStart), int(h.csumOffset)
			if cs+co+2 > len(pkt) {
				return 0, fmt.Errorf("tun: %d-byte packet: checksum at %d+%d is outside", len(pkt), cs, co)
			}
			// The field holds the pseudo-header sum: sum from csumStart.
			binary.BigEndian.PutUint16(pkt[cs+co:], ^fold(sum16(pkt[cs:], 0)))
		}
		copy(dst(0, len(pkt)), pkt)
		return 1, nil
	}
	ihl, hl, err := tcp4Headers(pkt)
	if err != nil {
		return 0, err
	}
	mss, payload := int(h.gsoSize), pkt[hl:]
	id := binary.BigEndian.Uint16(pkt[4:])
	seq := binary.BigEndian.Uint32(pkt[ihl+4:])
	flags := pkt[ihl+13]
	i := 0
	for off := 0; off < len(payload) || i == 0; off += mss {
		end := min(off+mss, len(payload))
		seg := dst(i, hl+end-off)
		copy(seg, pkt[:hl])
		copy(seg[hl:], payload[off:end])
		binary.BigEndian.PutUint16(seg[2:], uint16(len(seg)))
		binary.BigEndian.PutUint16(seg[4:], id+uint16(i))
		setIPv4Checksum(seg, ihl)
		tcp := seg[ihl:]
		binary.BigEndian.PutUint32(tcp[4:], seq+uint32(off))
		f := flags
		if end < len(payload) {
			f &^= tcpFIN | tcpPSH
		}
		if i > 0 {
			f &^= tcpCWR
		}
		tcp[13] = f
		tcp[16], tcp[17] = 0, 0
		binary.BigEndian.PutUint16(tcp[16:], ^fold(sum16(tcp, pseudoSum(seg, len(tcp)))))
		i++
	}
	return i, nil
}

package esp

import (
	"bytes"
	"encoding/binary"
)

// GRO in user space: consecutive decrypted inner TCP segments of one flow
// are handed to the TUN device as one super-segment, so the receiving
// kernel runs its TCP input once per 64 KB and we write once, not 45
// times. The rules are those of the kernel's own tcp_gro_receive, kept
// conservative: anything unusual is written as it came.

const (
	groMaxLen  = 65535 // an IPv4 total length
	groMaxSegs = 64
)

// groEnd returns the end of the run of packets from pkts[i] that can be
// merged into one super-segment; i+1 means pkts[i] goes alone.
func groEnd(pkts [][]byte, i int) int {
	head := pkts[i]
	hl, ok := groCandidate(head)
	if !ok {
		return i + 1
	}
	mss := len(head) - hl
	total, prev := len(head), head
	j := i + 1
	for ; j < len(pkts) && j-i < groMaxSegs; j++ {
		next := pkts[j]
		nhl, ok := groCandidate(next)
		if !ok || nhl != hl || len(prev)-hl != mss || len(next)-hl > mss ||
			total+len(next)-hl > groMaxLen || !sameFlow(head, next, hl) ||
			tcpSeq(next) != tcpSeq(prev)+uint32(len(prev)-hl) || prev[20+13]&tcpPSH != 0 {
			break
		}
		total += len(next) - hl
		prev = next
	}
	return j
}

// groCandidate accepts a plain IPv4 (no options, not a fragment) TCP
// segment carrying data, flags ACK or ACK|PSH, whose checksum is right:
// merged segments go up with a checksum the kernel does not verify, so
// a bad one must not be laundered into a good one.
func groCandidate(p []byte) (hl int, ok bool) {
	if len(p) < 40 || p[0] != 0x45 || p[9] != protoTCP || binary.BigEndian.Uint16(p[6:])&0x3fff != 0 ||
		int(binary.BigEndian.Uint16(p[2:])) != len(p) {
		return 0, false
	}
	hl = 20 + int(p[32]>>4)*4
	if hl < 40 || hl >= len(p) || p[33]&^tcpPSH != tcpACK {
		return 0, false
	}
	return hl, fold(sum16(p[20:], pseudoSum(p, len(p)-20))) == 0xffff
}

// sameFlow: same addresses, TOS, TTL, DF, ports, ACK number, window and
// TCP options (timestamps included), as tcp_gro_receive requires.
func sameFlow(a, b []byte, hl int) bool {
	return a[1] == b[1] && a[6] == b[6] && a[8] == b[8] &&
		bytes.Equal(a[12:20], b[12:20]) && // addresses
		bytes.Equal(a[20:24], b[20:24]) && // ports
		bytes.Equal(a[28:32], b[28:32]) && // ACK number
		bytes.Equal(a[34:36], b[34:36]) && // window
		bytes.Equal(a[40:hl], b[40:hl]) // options
}

func tcpSeq(p []byte) uint32 { return binary.BigEndian.Uint32(p[24:]) }

// groMerge turns pkts (a run groEnd accepted, at least two) into one
// super-segment: it rewrites the first packet's headers in place and
// returns the virtio header and the pieces to write (the first packet,
// then the payload of each other one), so nothing is copied.
func groMerge(pkts [][]byte, iov [][]byte) (vnetHdr, [][]byte) {
	head := pkts[0]
	hl := 20 + int(head[32]>>4)*4
	total := len(head)
	iov = append(iov, head)
	for _, p := range pkts[1:] {
		total += len(p) - hl
		iov = append(iov, p[hl:])
	}
	head[33] |= pkts[len(pkts)-1][33] & tcpPSH
	binary.BigEndian.PutUint16(head[2:], uint16(total))
	setIPv4Checksum(head, 20)
	// CHECKSUM_PARTIAL: the field holds the pseudo-header sum and the
	// kernel completes it only if the segment is forwarded.
	binary.BigEndian.PutUint16(head[36:], fold(pseudoSum(head, total-20)))
	return vnetHdr{flags: vnetNeedsCsum, gsoType: vnetGSOTCPv4, hdrLen: uint16(hl),
		gsoSize: uint16(len(head) - hl), csumStart: 20, csumOffset: 16}, iov
}

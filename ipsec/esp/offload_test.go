package esp

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// superSegment builds what a TUN device with TSO4 hands over: one IPv4/TCP
// packet with n payload bytes (timestamps option, ACK|PSH|FIN) and a
// virtio header asking for segments of mss bytes.
func superSegment(n, mss int) (vnetHdr, []byte) {
	hl := 20 + 32
	p := make([]byte, hl+n)
	p[0], p[8], p[9] = 0x45, 64, protoTCP
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], 7)
	p[6] = 0x40 // DF
	copy(p[12:], []byte{10, 32, 1, 1, 10, 32, 2, 1})
	tcp := p[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5001)
	binary.BigEndian.PutUint32(tcp[4:], 0xfffff000) // wraps inside the run
	binary.BigEndian.PutUint32(tcp[8:], 1234)
	tcp[12], tcp[13] = 8<<4, tcpACK|tcpPSH|tcpFIN
	binary.BigEndian.PutUint16(tcp[14:], 512)
	copy(tcp[20:], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	for i := range n {
		p[hl+i] = byte(i * 7)
	}
	binary.BigEndian.PutUint16(tcp[16:], fold(pseudoSum(p, len(tcp)))) // partial, as the kernel leaves it
	return vnetHdr{flags: vnetNeedsCsum, gsoType: vnetGSOTCPv4, hdrLen: uint16(hl), gsoSize: uint16(mss),
		csumStart: 20, csumOffset: 16}, p
}

func split(t *testing.T, h vnetHdr, pkt []byte) [][]byte {
	t.Helper()
	count, segLen, err := tsoLayout(h, pkt)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, count*segLen)
	var segs [][]byte
	if _, err := tsoSplit(h, pkt, func(i, n int) []byte {
		segs = append(segs, buf[i*segLen:i*segLen+n])
		return segs[i]
	}); err != nil {
		t.Fatal(err)
	}
	if len(segs) != count {
		t.Fatalf("%d segments, layout said %d", len(segs), count)
	}
	return segs
}

func TestTSOSplitMakesStandaloneValidSegments(t *testing.T) {
	const n, mss = 10000, 1448
	h, pkt := superSegment(n, mss)
	want := append([]byte(nil), pkt[52:]...)
	segs := split(t, h, pkt)
	if len(segs) != (n+mss-1)/mss {
		t.Fatalf("%d segments of %d bytes, want %d", len(segs), mss, (n+mss-1)/mss)
	}
	var got []byte
	for i, s := range segs {
		if fold(sum16(s[:20], 0)) != 0xffff {
			t.Errorf("segment %d: IPv4 header checksum wrong", i)
		}
		if fold(sum16(s[20:], pseudoSum(s, len(s)-20))) != 0xffff {
			t.Errorf("segment %d: TCP checksum wrong", i)
		}
		if int(binary.BigEndian.Uint16(s[2:])) != len(s) || binary.BigEndian.Uint16(s[4:]) != uint16(7+i) {
			t.Errorf("segment %d: total length %d (len %d), id %d", i, binary.BigEndian.Uint16(s[2:]), len(s), binary.BigEndian.Uint16(s[4:]))
		}
		if seq := tcpSeq(s); seq != 0xfffff000+uint32(i*mss) {
			t.Errorf("segment %d: seq %#x", i, seq)
		}
		last := i == len(segs)-1
		if fin := s[33]&(tcpFIN|tcpPSH) != 0; fin != last {
			t.Errorf("segment %d: flags %#x: FIN/PSH belong on the last segment only", i, s[33])
		}
		got = append(got, s[52:]...)
	}
	if !bytes.Equal(got, want) {
		t.Error("the segments' payloads do not add up to the super-segment's")
	}
}

func TestGROMergesSplitSegmentsBackIntoOne(t *testing.T) {
	h, pkt := superSegment(20000, 1400)
	want := append([]byte(nil), pkt[52:]...)
	segs := split(t, h, pkt)
	for _, s := range segs {
		s[33] &^= tcpFIN // GRO leaves FIN segments alone; the run ends with PSH
		binary.BigEndian.PutUint16(s[36:], 0)
		binary.BigEndian.PutUint16(s[36:], ^fold(sum16(s[20:], pseudoSum(s, len(s)-20))))
	}
	if end := groEnd(segs, 0); end != len(segs) {
		t.Fatalf("groEnd merged %d of %d segments", end, len(segs))
	}
	mh, iov := groMerge(segs, [][]byte{nil})
	merged := bytes.Join(iov[1:], nil)
	if mh.gsoType != vnetGSOTCPv4 || mh.gsoSize != 1400 || mh.hdrLen != 52 || int(binary.BigEndian.Uint16(merged[2:])) != len(merged) {
		t.Fatalf("merged header %+v, total length %d, len %d", mh, binary.BigEndian.Uint16(merged[2:]), len(merged))
	}
	if !bytes.Equal(merged[52:], want) || merged[33]&tcpPSH == 0 {
		t.Errorf("merged payload differs or PSH lost (flags %#x)", merged[33])
	}
	// Complete the checksum as the kernel would (CHECKSUM_PARTIAL: sum
	// from csumStart into csumStart+csumOffset); it must then verify.
	binary.BigEndian.PutUint16(merged[36:], ^fold(sum16(merged[20:], 0)))
	if fold(sum16(merged[:20], 0)) != 0xffff || fold(sum16(merged[20:], pseudoSum(merged, len(merged)-20))) != 0xffff {
		t.Error("merged packet's checksums do not verify")
	}
}

func TestGROKeepsSegmentWithBadChecksumApart(t *testing.T) {
	h, pkt := superSegment(6000, 1000)
	segs := split(t, h, pkt)
	segs[3][60] ^= 1 // a peer's corrupt segment must reach the kernel as it is
	if end := groEnd(segs, 0); end != 3 {
		t.Errorf("groEnd = %d, want the run to stop before the corrupt segment 3", end)
	}
	if end := groEnd(segs, 3); end != 4 {
		t.Errorf("groEnd from the corrupt segment = %d, want it alone", end)
	}
}

func TestGROKeepsOtherFlowsAndGapsApart(t *testing.T) {
	h, pkt := superSegment(6000, 1000)
	segs := split(t, h, pkt)
	segs = append(segs[:2], segs[3:]...) // a lost segment: seq gap
	if end := groEnd(segs, 0); end != 2 {
		t.Errorf("groEnd across a sequence gap = %d, want 2", end)
	}
}

// sum16Ref is RFC 1071 word by word, the reference for the fast sum16.
func sum16Ref(b []byte) uint16 {
	var acc uint32
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

func TestChecksumMatchesRFC1071WordByWord(t *testing.T) {
	b := make([]byte, 1500)
	for i := range b {
		b[i] = byte(255 - i%7) // mostly 0xff bytes: many carries
	}
	for n := 0; n <= len(b); n++ {
		if got, want := fold(sum16(b[:n], 0)), sum16Ref(b[:n]); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
			t.Fatalf("%d bytes: sum %#x, want %#x", n, got, want)
		}
	}
}

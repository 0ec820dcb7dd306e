package esp

import "encoding/binary"

// sum16 adds b to the Internet checksum accumulator acc (RFC 1071). It
// adds 32-bit words into 64 bits: a ones'-complement sum folds to the same
// 16 bits whatever the word size, and this halves the loop count.
func sum16(b []byte, acc uint64) uint64 {
	for len(b) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

func fold(acc uint64) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// pseudoSum is the IPv4 pseudo-header of a TCP segment of n bytes in the
// IPv4 packet ip.
func pseudoSum(ip []byte, n int) uint64 {
	return sum16(ip[12:20], uint64(protoTCP)+uint64(n))
}

// setIPv4Checksum recomputes the header checksum of ip (header length ihl).
func setIPv4Checksum(ip []byte, ihl int) {
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(ip[:ihl], 0)))
}

const protoTCP = 6

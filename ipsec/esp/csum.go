package esp

import (
	"encoding/binary"
	"math/bits"
)

// sum16 adds b to the Internet checksum accumulator acc (RFC 1071). A
// ones'-complement sum folds to the same 16 bits whatever the word size,
// so it adds 64-bit words with end-around carry: this pass runs over every
// byte sent and received, next to AES-GCM.
func sum16(b []byte, acc uint64) uint64 {
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	acc, c = bits.Add64(acc, c, 0)
	acc += c
	// Fold to 32 bits so the 16-bit tail cannot overflow.
	acc = acc>>32 + acc&0xffffffff
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

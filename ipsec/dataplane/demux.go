package dataplane

// Kind is what a datagram received on UDP port 4500 carries.
type Kind int

const (
	// Invalid datagrams are too short to be anything: drop them.
	Invalid Kind = iota
	// Keepalive is a NAT-T keepalive (one byte 0xFF, RFC 3948 2.3): drop.
	Keepalive
	// IKE is an IKE message behind the 4-byte non-ESP marker.
	IKE
	// ESP is an ESP packet (its first four bytes are the non-zero SPI).
	ESP
)

func (k Kind) String() string {
	return [...]string{"invalid", "keepalive", "ike", "esp"}[k]
}

// Classify tells IKE, ESP and keepalives apart on port 4500 (RFC 3948 2.2:
// an SPI of zero is the non-ESP marker). For IKE it returns the message
// without the marker; for ESP the datagram as is. It does not copy.
func Classify(b []byte) (Kind, []byte) {
	switch {
	case len(b) == 1 && b[0] == 0xff:
		return Keepalive, nil
	case len(b) < 8:
		// An ESP header is 8 bytes; an IKE header after the marker is 28.
		return Invalid, nil
	case b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0:
		return IKE, b[4:]
	}
	return ESP, b
}

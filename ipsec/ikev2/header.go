package ikev2

import "encoding/binary"

// HeaderLen is the size of the IKE header (RFC 7296 section 3.1).
const HeaderLen = 28

// MaxMessageLen bounds a whole IKE message, encoded or decoded.
const MaxMessageLen = 64 * 1024

// MaxPayloads bounds the payloads in one message (outer or decrypted).
const MaxPayloads = 64

// Header is the fixed IKE header. Length is set by the encoder and checked
// by the decoder against the datagram size.
type Header struct {
	SPIi, SPIr   uint64
	NextPayload  PayloadType
	MajorVersion uint8 // 2 when encoding if left zero
	MinorVersion uint8
	Exchange     ExchangeType
	Flags        Flags
	MessageID    uint32
	Length       uint32
}

// IsResponse reports whether the R flag is set.
func (h *Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// IsInitiator reports whether the I flag is set (sent by the original initiator).
func (h *Header) IsInitiator() bool { return h.Flags&FlagInitiator != 0 }

// AppendTo appends the 28-byte header to b as it is, with h.Length as given.
func (h *Header) AppendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, h.SPIi)
	b = binary.BigEndian.AppendUint64(b, h.SPIr)
	major := h.MajorVersion
	if major == 0 {
		major = 2
	}
	b = append(b, byte(h.NextPayload), major<<4|h.MinorVersion&0x0f, byte(h.Exchange), byte(h.Flags))
	b = appendU32(b, h.MessageID)
	return appendU32(b, h.Length)
}

// DecodeHeader parses the IKE header at the start of b without looking at
// the payloads. It checks the version and that Length matches len(b) and
// stays within MaxMessageLen. A responder can use it to find the SA before
// the full decode.
func DecodeHeader(b []byte) (Header, error) {
	var h Header
	if len(b) > MaxMessageLen {
		return h, &DecodeError{Field: "length", Reason: "message of " + itoa(len(b)) + " bytes exceeds 65536"}
	}
	r := newReader(b, 0, PayloadNone)
	h.SPIi = binary.BigEndian.Uint64(pad8(r.bytes(8, "initiator SPI")))
	h.SPIr = binary.BigEndian.Uint64(pad8(r.bytes(8, "responder SPI")))
	h.NextPayload = PayloadType(r.u8("next payload"))
	v := r.u8("version")
	h.MajorVersion, h.MinorVersion = v>>4, v&0x0f
	h.Exchange = ExchangeType(r.u8("exchange type"))
	h.Flags = Flags(r.u8("flags"))
	h.MessageID = r.u32("message ID")
	h.Length = r.u32("length")
	if r.err != nil {
		return h, r.err
	}
	if h.MajorVersion != 2 {
		return h, &VersionError{Major: h.MajorVersion, Minor: h.MinorVersion}
	}
	if int64(h.Length) != int64(len(b)) {
		return h, &DecodeError{Offset: 24, Field: "length", Reason: "says " + itoa(int(h.Length)) + " bytes, datagram has " + itoa(len(b))}
	}
	return h, nil
}

func pad8(b []byte) []byte {
	if len(b) != 8 {
		return make([]byte, 8)
	}
	return b
}

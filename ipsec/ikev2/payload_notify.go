package ikev2

import (
	"encoding/binary"
	"fmt"
)

// Notify is the Notify payload. Protocol and SPI are zero/empty for
// notifications about the IKE SA.
type Notify struct {
	Protocol ProtocolID
	SPI      []byte
	Kind     NotifyType // the Notify Message Type
	Data     []byte
}

// Type implements Payload.
func (*Notify) Type() PayloadType { return PayloadNotify }

func (n *Notify) appendBody(b []byte) ([]byte, error) {
	if len(n.SPI) > 255 {
		return nil, fmt.Errorf("notify SPI of %d bytes", len(n.SPI))
	}
	b = append(b, byte(n.Protocol), byte(len(n.SPI)))
	b = appendU16(b, uint16(n.Kind))
	return append(append(b, n.SPI...), n.Data...), nil
}

func decodeNotify(r *reader) *Notify {
	n := &Notify{Protocol: ProtocolID(r.u8("protocol ID"))}
	spi := int(r.u8("SPI size"))
	n.Kind = NotifyType(r.u16("notify message type"))
	n.SPI = r.clone(spi, "SPI")
	n.Data = r.rest("notification data")
	return n
}

// SignatureHashes decodes SIGNATURE_HASH_ALGORITHMS data (RFC 7427).
func (n *Notify) SignatureHashes() ([]HashAlgorithm, error) {
	if n.Kind != SIGNATURE_HASH_ALGORITHMS || len(n.Data)%2 != 0 {
		return nil, fmt.Errorf("ikev2: %s notify with %d data bytes is not a hash list", n.Kind, len(n.Data))
	}
	out := make([]HashAlgorithm, 0, len(n.Data)/2)
	for i := 0; i < len(n.Data); i += 2 {
		out = append(out, HashAlgorithm(binary.BigEndian.Uint16(n.Data[i:])))
	}
	return out, nil
}

// NewSignatureHashes builds a SIGNATURE_HASH_ALGORITHMS notification.
func NewSignatureHashes(hs ...HashAlgorithm) *Notify {
	n := &Notify{Kind: SIGNATURE_HASH_ALGORITHMS}
	for _, h := range hs {
		n.Data = appendU16(n.Data, uint16(h))
	}
	return n
}

// Delete is the Delete payload: SPIs of one protocol (none for IKE).
type Delete struct {
	Protocol ProtocolID
	SPISize  uint8
	SPIs     [][]byte
}

// Type implements Payload.
func (*Delete) Type() PayloadType { return PayloadDelete }

func (d *Delete) appendBody(b []byte) ([]byte, error) {
	if len(d.SPIs) > 0xffff {
		return nil, fmt.Errorf("%d SPIs", len(d.SPIs))
	}
	b = append(b, byte(d.Protocol), d.SPISize)
	b = appendU16(b, uint16(len(d.SPIs)))
	for i, s := range d.SPIs {
		if len(s) != int(d.SPISize) {
			return nil, fmt.Errorf("SPI %d has %d bytes, SPI size is %d", i, len(s), d.SPISize)
		}
		b = append(b, s...)
	}
	return b, nil
}

func decodeDelete(r *reader) *Delete {
	d := &Delete{Protocol: ProtocolID(r.u8("protocol ID")), SPISize: r.u8("SPI size")}
	n := int(r.u16("number of SPIs"))
	if r.err == nil && int(d.SPISize)*n != r.left() {
		r.failf("number of SPIs", "%d SPIs of %d bytes do not fill %d bytes", n, d.SPISize, r.left())
		return d
	}
	if d.SPISize == 0 && n != 0 {
		r.failf("SPI size", "0 with %d SPIs", n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		d.SPIs = append(d.SPIs, r.clone(int(d.SPISize), "SPI"))
	}
	return d
}

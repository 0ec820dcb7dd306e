package ikev2

import (
	"encoding/binary"
	"fmt"
)

// SealMessage encodes the header and the inner payloads as one message
// whose only payload is SK, encrypted and integrity-protected with c.
// h.NextPayload and h.Length are filled in.
func (c *Cipher) SealMessage(h Header, inner []Payload) ([]byte, error) {
	first, pt, err := AppendPayloads(nil, inner)
	if err != nil {
		return nil, err
	}
	return c.sealOne(h, PayloadSK, first, nil, pt)
}

// sealOne writes header || generic header || extra || encrypted body.
func (c *Cipher) sealOne(h Header, t, first PayloadType, extra, pt []byte) ([]byte, error) {
	total := HeaderLen + 4 + len(extra) + len(pt) + c.Overhead(len(pt))
	if total > MaxMessageLen {
		return nil, fmt.Errorf("ikev2: encode %s: encrypted message of %d bytes exceeds %d", h.Exchange, total, MaxMessageLen)
	}
	h.NextPayload, h.Length = t, uint32(total)
	msg := h.AppendTo(make([]byte, 0, total))
	msg = append(msg, byte(first), 0)
	msg = appendU16(msg, uint16(total-HeaderLen))
	msg = append(msg, extra...)
	out, err := c.seal(msg, pt)
	if err != nil {
		return nil, err
	}
	if len(out) != total {
		return nil, fmt.Errorf("ikev2: internal: sealed %d bytes, planned %d", len(out), total)
	}
	return out, nil
}

// OpenMessage decodes a message whose only payload is SK, checks its
// integrity and returns it with the decrypted inner payloads as Payloads.
// A failed check returns ErrAuthentication: drop the message silently.
func (c *Cipher) OpenMessage(raw []byte) (*Message, error) {
	m, err := DecodeMessage(raw)
	if err != nil {
		return nil, err
	}
	if len(m.Payloads) != 1 || m.Payloads[0].Type() != PayloadSK {
		return nil, fmt.Errorf("ikev2: %s message %d: want exactly one SK payload, have %d payloads", m.Header.Exchange, m.Header.MessageID, len(m.Payloads))
	}
	pt, err := c.open(raw, HeaderLen+4)
	if err != nil {
		return nil, err
	}
	inner, err := DecodePayloads(m.Payloads[0].(*Encrypted).Next, pt)
	if err != nil {
		return nil, fmt.Errorf("ikev2: %s message %d, inside SK: %w", m.Header.Exchange, m.Header.MessageID, err)
	}
	m.Payloads = inner
	return m, nil
}

func fragHeader(num, total uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, num), total)
}

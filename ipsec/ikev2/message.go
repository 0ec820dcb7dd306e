package ikev2

import (
	"fmt"
	"strconv"
)

func itoa(n int) string { return strconv.Itoa(n) }

// Payload is one IKEv2 payload body. The generic payload header (next
// payload, critical bit, length) is written and read by the message codec.
type Payload interface {
	// Type is the payload type code written in the previous "next payload".
	Type() PayloadType
	appendBody(b []byte) ([]byte, error)
}

// Message is a decoded IKE message: the header and the payloads in order.
// When the message carries an SK or SKF payload it is the last one; its
// contents are decrypted by a Cipher (see OpenMessage) into Inner.
type Message struct {
	Header   Header
	Payloads []Payload
}

// DecodeMessage parses a whole IKE message (one UDP payload, without the
// non-ESP marker of port 4500). Unknown payloads without the critical bit
// are skipped; an unknown critical payload returns *UnsupportedCriticalError.
// An SK or SKF payload is returned undecrypted, as *Encrypted or *Fragment.
func DecodeMessage(b []byte) (*Message, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return nil, err
	}
	ps, err := decodeChain(h.NextPayload, b[HeaderLen:], HeaderLen, true)
	if err != nil {
		return nil, err
	}
	return &Message{Header: h, Payloads: ps}, nil
}

// DecodePayloads parses a chain of payloads starting with type first, such
// as the decrypted contents of an SK payload. SK and SKF are refused here.
func DecodePayloads(first PayloadType, b []byte) ([]Payload, error) {
	return decodeChain(first, b, 0, false)
}

func decodeChain(next PayloadType, b []byte, base int, outer bool) ([]Payload, error) {
	var ps []Payload
	r := newReader(b, base, PayloadNone)
	for count := 0; next != PayloadNone; count++ {
		if count >= MaxPayloads {
			return nil, &DecodeError{Payload: next, Offset: base + r.off, Field: "payload count", Reason: "more than " + itoa(MaxPayloads) + " payloads"}
		}
		start := r.off
		r.pt = next
		nn := PayloadType(r.u8("next payload"))
		crit := r.u8("critical bit")&0x80 != 0
		length := int(r.u16("payload length"))
		if r.err == nil && length < 4 {
			r.off = start + 2
			r.failf("payload length", "%d is shorter than the 4-byte generic header", length)
		}
		body := r.sub(length-4, "payload body")
		if r.err != nil {
			return nil, r.err
		}
		p, err := decodeBody(next, nn, crit, body, outer)
		if err != nil {
			return nil, err
		}
		if p != nil {
			ps = append(ps, p)
		}
		if next == PayloadSK || next == PayloadSKF {
			if r.left() != 0 {
				return nil, &DecodeError{Payload: next, Offset: base + r.off, Field: "payload length", Reason: itoa(r.left()) + " bytes follow the encrypted payload, which must be last"}
			}
			return ps, nil
		}
		next = nn
	}
	if r.left() != 0 {
		return nil, &DecodeError{Offset: base + r.off, Field: "next payload", Reason: itoa(r.left()) + " bytes after the last payload"}
	}
	return ps, nil
}

// decodeBody decodes one payload body; unknown non-critical types give nil.
func decodeBody(t, next PayloadType, crit bool, r *reader, outer bool) (Payload, error) {
	var p Payload
	switch t {
	case PayloadSA:
		p = decodeSA(r)
	case PayloadKE:
		p = decodeKE(r)
	case PayloadIDi, PayloadIDr:
		p = decodeID(r, t == PayloadIDr)
	case PayloadCERT:
		p = decodeCert(r)
	case PayloadCERTREQ:
		p = decodeCertReq(r)
	case PayloadAUTH:
		p = decodeAuth(r)
	case PayloadNonce:
		p = decodeNonce(r)
	case PayloadNotify:
		p = decodeNotify(r)
	case PayloadDelete:
		p = decodeDelete(r)
	case PayloadVendorID:
		p = &VendorID{Data: r.rest("vendor ID")}
	case PayloadTSi, PayloadTSr:
		p = decodeTS(r, t == PayloadTSr)
	case PayloadCP:
		p = decodeCP(r)
	case PayloadSK, PayloadSKF:
		if !outer {
			r.failf("payload type", "%s inside an encrypted payload", t)
			return nil, r.err
		}
		p = decodeEncrypted(r, t, next)
	default:
		if crit {
			return nil, &UnsupportedCriticalError{Type: t, Offset: r.base - 4}
		}
		return nil, nil
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return p, nil
}

// AppendPayloads appends the payload chain to b and returns the type of the
// first payload, for the header's or the SK payload's "next payload" field.
// An *Encrypted or *Fragment must be the last payload.
func AppendPayloads(b []byte, ps []Payload) (PayloadType, []byte, error) {
	if len(ps) > MaxPayloads {
		return PayloadNone, nil, fmt.Errorf("ikev2: encode: %d payloads exceed %d", len(ps), MaxPayloads)
	}
	for i, p := range ps {
		next := PayloadNone
		if i+1 < len(ps) {
			next = ps[i+1].Type()
		}
		if e, ok := p.(*Encrypted); ok {
			next = e.Next
		} else if f, ok := p.(*Fragment); ok {
			next = f.Next
		}
		if i+1 < len(ps) && isEncrypted(p) {
			return PayloadNone, nil, fmt.Errorf("ikev2: encode: %s payload %d is not last", p.Type(), i)
		}
		at := len(b)
		b = append(b, byte(next), 0, 0, 0)
		var err error
		if b, err = p.appendBody(b); err != nil {
			return PayloadNone, nil, fmt.Errorf("ikev2: encode %s payload %d: %w", p.Type(), i, err)
		}
		if err := putLen16(b, at, 2, p.Type().String()+" payload"); err != nil {
			return PayloadNone, nil, err
		}
	}
	if len(ps) == 0 {
		return PayloadNone, b, nil
	}
	return ps[0].Type(), b, nil
}

func isEncrypted(p Payload) bool {
	t := p.Type()
	return t == PayloadSK || t == PayloadSKF
}

// Encode serialises the message, filling in Header.NextPayload and
// Header.Length (also updated in m); a zero MajorVersion becomes 2.
func (m *Message) Encode() ([]byte, error) {
	b := make([]byte, HeaderLen, 512)
	first, b, err := AppendPayloads(b, m.Payloads)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessageLen {
		return nil, fmt.Errorf("ikev2: encode %s: message of %d bytes exceeds %d", m.Header.Exchange, len(b), MaxMessageLen)
	}
	m.Header.NextPayload = first
	if m.Header.MajorVersion == 0 {
		m.Header.MajorVersion = 2
	}
	m.Header.Length = uint32(len(b))
	m.Header.AppendTo(b[:0])
	return b, nil
}

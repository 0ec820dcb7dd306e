package ikev2

import (
	"errors"
	"fmt"
)

// Bounds on fragmented messages (RFC 7383 section 2.5.3 leaves them to us).
const (
	MaxFragments      = 32
	MaxReassembledLen = MaxMessageLen
)

// SealFragments encodes the inner payloads as SKF fragments, each a whole
// IKE message of at most maxLen bytes (the caller subtracts IP and UDP
// headers and the non-ESP marker from the path MTU). RFC 7383 section
// 2.5: every fragment carries the header's message ID and is encrypted on
// its own; only fragment 1 names the first inner payload.
func (c *Cipher) SealFragments(h Header, inner []Payload, maxLen int) ([][]byte, error) {
	first, pt, err := AppendPayloads(nil, inner)
	if err != nil {
		return nil, err
	}
	room := maxLen - HeaderLen - 8 - c.Overhead(maxLen)
	for room > 0 && HeaderLen+8+room+c.Overhead(room) > maxLen {
		room--
	}
	if room < 1 {
		return nil, fmt.Errorf("ikev2: fragment size %d leaves no room for data", maxLen)
	}
	total := (len(pt) + room - 1) / room
	if total == 0 {
		total = 1
	}
	if total > MaxFragments {
		return nil, fmt.Errorf("ikev2: %d bytes in fragments of %d make %d fragments, max %d", len(pt), maxLen, total, MaxFragments)
	}
	out := make([][]byte, 0, total)
	for i := range total {
		chunk := pt[i*room : min((i+1)*room, len(pt))]
		next := PayloadNone
		if i == 0 {
			next = first
		}
		f, err := c.sealOne(h, PayloadSKF, next, fragHeader(uint16(i+1), uint16(total)), chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// ErrFragmentIgnored is returned by Reassembler.Add for a fragment that is
// valid but not used: a duplicate, or one with a smaller total than the
// fragments already held (RFC 7383 section 2.6.1).
var ErrFragmentIgnored = errors.New("ikev2: fragment ignored")

// Reassembler collects the SKF fragments of one message (one message ID
// and direction). Each fragment is authenticated before it is kept. The
// caller discards the Reassembler on timeout or when the exchange ends.
// It is not safe for concurrent use: one goroutine per IKE SA feeds it.
type Reassembler struct {
	c     *Cipher
	id    uint32
	total uint16
	first PayloadType
	parts map[uint16][]byte
	size  int
}

// NewReassembler starts collecting fragments of message msgID.
func (c *Cipher) NewReassembler(msgID uint32) *Reassembler {
	return &Reassembler{c: c, id: msgID, parts: map[uint16][]byte{}}
}

// Add takes one datagram. It returns the reassembled message (header of
// the fragment that completed it, decrypted inner payloads) once every
// fragment is in, nil while some are missing, ErrAuthentication for a
// forged fragment and ErrFragmentIgnored for one to drop.
func (r *Reassembler) Add(raw []byte) (*Message, error) {
	m, err := DecodeMessage(raw)
	if err != nil {
		return nil, err
	}
	if len(m.Payloads) != 1 || m.Payloads[0].Type() != PayloadSKF {
		return nil, fmt.Errorf("ikev2: message %d: want exactly one SKF payload", m.Header.MessageID)
	}
	f := m.Payloads[0].(*Fragment)
	if m.Header.MessageID != r.id {
		return nil, fmt.Errorf("ikev2: fragment of message %d given to reassembly of message %d", m.Header.MessageID, r.id)
	}
	if f.Total > MaxFragments {
		return nil, fmt.Errorf("ikev2: message %d: %d fragments exceed %d", r.id, f.Total, MaxFragments)
	}
	if f.Total < r.total || r.parts[f.Number] != nil && f.Total == r.total {
		return nil, ErrFragmentIgnored
	}
	pt, err := r.c.open(raw, HeaderLen+8)
	if err != nil {
		return nil, err
	}
	if f.Total > r.total {
		r.total, r.parts, r.size = f.Total, map[uint16][]byte{}, 0
	}
	return r.keep(m, f, pt)
}

func (r *Reassembler) keep(m *Message, f *Fragment, pt []byte) (*Message, error) {
	if r.size+len(pt) > MaxReassembledLen {
		return nil, fmt.Errorf("ikev2: message %d: fragments exceed %d bytes", r.id, MaxReassembledLen)
	}
	r.parts[f.Number] = append([]byte{}, pt...)
	r.size += len(pt)
	if f.Number == 1 {
		r.first = f.Next
	}
	if len(r.parts) < int(r.total) {
		return nil, nil
	}
	all := make([]byte, 0, r.size)
	for i := uint16(1); i <= r.total; i++ {
		all = append(all, r.parts[i]...)
	}
	inner, err := DecodePayloads(r.first, all)
	if err != nil {
		return nil, fmt.Errorf("ikev2: message %d, reassembled from %d fragments: %w", r.id, r.total, err)
	}
	m.Header.NextPayload = PayloadSK
	return &Message{Header: m.Header, Payloads: inner}, nil
}

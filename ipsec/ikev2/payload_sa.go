package ikev2

import "fmt"

// MaxProposals and MaxTransforms bound an SA payload.
const (
	MaxProposals  = 64
	MaxTransforms = 64
)

// TransformType is the type of a transform (RFC 7296 section 3.3.2).
type TransformType uint8

// Transform types.
const (
	TransformENCR  TransformType = 1
	TransformPRF   TransformType = 2
	TransformINTEG TransformType = 3
	TransformDH    TransformType = 4
	TransformESN   TransformType = 5
)

// AttrKeyLength is the only transform attribute RFC 7296 defines (TV format).
const AttrKeyLength uint16 = 14

// SA is the Security Association payload: proposals in preference order.
type SA struct {
	Proposals []Proposal
}

// Proposal is one proposal substructure. Number starts at 1; SPI is empty
// in IKE_SA_INIT, 8 bytes for an IKE rekey, 4 bytes for ESP/AH.
type Proposal struct {
	Number     uint8
	Protocol   ProtocolID
	SPI        []byte
	Transforms []Transform
}

// Transform is one transform. KeyLength is the Key Length attribute in
// bits (0: absent). Other holds any other attribute; a responder must not
// select a transform whose attributes it does not understand.
type Transform struct {
	Type      TransformType
	ID        uint16
	KeyLength uint16
	Other     []Attribute
}

// Attribute is a transform attribute other than Key Length. TV attributes
// have a 2-byte Value; TLV ones carry Data.
type Attribute struct {
	Type  uint16
	TV    bool
	Value uint16
	Data  []byte
}

// Type implements Payload.
func (*SA) Type() PayloadType { return PayloadSA }

func (s *SA) appendBody(b []byte) ([]byte, error) {
	if len(s.Proposals) == 0 || len(s.Proposals) > MaxProposals {
		return nil, fmt.Errorf("%d proposals, want 1..%d", len(s.Proposals), MaxProposals)
	}
	for i := range s.Proposals {
		last := byte(2)
		if i == len(s.Proposals)-1 {
			last = 0
		}
		var err error
		if b, err = s.Proposals[i].appendTo(b, last); err != nil {
			return nil, fmt.Errorf("proposal %d: %w", i+1, err)
		}
	}
	return b, nil
}

func (p *Proposal) appendTo(b []byte, last byte) ([]byte, error) {
	if len(p.SPI) > 255 || len(p.Transforms) > MaxTransforms {
		return nil, fmt.Errorf("SPI of %d bytes or %d transforms out of range", len(p.SPI), len(p.Transforms))
	}
	at := len(b)
	b = append(b, last, 0, 0, 0, p.Number, byte(p.Protocol), byte(len(p.SPI)), byte(len(p.Transforms)))
	b = append(b, p.SPI...)
	for i := range p.Transforms {
		last := byte(3)
		if i == len(p.Transforms)-1 {
			last = 0
		}
		var err error
		if b, err = p.Transforms[i].appendTo(b, last); err != nil {
			return nil, err
		}
	}
	return b, putLen16(b, at, 2, "proposal")
}

func (t *Transform) appendTo(b []byte, last byte) ([]byte, error) {
	at := len(b)
	b = append(b, last, 0, 0, 0, byte(t.Type), 0)
	b = appendU16(b, t.ID)
	if t.KeyLength != 0 {
		b = appendU16(b, 0x8000|AttrKeyLength)
		b = appendU16(b, t.KeyLength)
	}
	for _, a := range t.Other {
		if a.TV {
			b = appendU16(appendU16(b, 0x8000|a.Type), a.Value)
			continue
		}
		if len(a.Data) > 0xffff {
			return nil, fmt.Errorf("attribute %d of %d bytes", a.Type, len(a.Data))
		}
		b = appendU16(appendU16(b, a.Type&0x7fff), uint16(len(a.Data)))
		b = append(b, a.Data...)
	}
	return b, putLen16(b, at, 2, "transform")
}

func decodeSA(r *reader) *SA {
	s := &SA{}
	for r.err == nil && r.left() > 0 {
		if len(s.Proposals) == MaxProposals {
			r.failf("proposal", "more than %d proposals", MaxProposals)
			break
		}
		last := r.u8("proposal last substruc")
		r.u8("reserved")
		n := int(r.u16("proposal length"))
		if r.err == nil && n < 8 {
			r.failf("proposal length", "%d is less than 8", n)
		}
		p := decodeProposal(r.sub(n-4, "proposal"))
		if r.err == nil && (last == 0) != (r.left() == 0) || last != 0 && last != 2 {
			r.failf("proposal last substruc", "value %d inconsistent with position %d", last, len(s.Proposals)+1)
		}
		s.Proposals = append(s.Proposals, *p)
	}
	if r.err == nil && len(s.Proposals) == 0 {
		r.failf("proposals", "SA payload has no proposal")
	}
	return s
}

// decodeProposal parses a proposal body after its 4-byte header.
func decodeProposal(r *reader) *Proposal {
	p := &Proposal{}
	p.Number = r.u8("proposal number")
	p.Protocol = ProtocolID(r.u8("protocol ID"))
	spiSize := int(r.u8("SPI size"))
	nt := int(r.u8("number of transforms"))
	if r.err == nil && spiSize != 0 && spiSize != 4 && spiSize != 8 {
		r.failf("SPI size", "%d, want 0, 4 or 8", spiSize)
	}
	p.SPI = r.clone(spiSize, "SPI")
	for r.err == nil && r.left() > 0 {
		if len(p.Transforms) == MaxTransforms {
			r.failf("transform", "more than %d transforms", MaxTransforms)
			break
		}
		last := r.u8("transform last substruc")
		r.u8("reserved")
		n := int(r.u16("transform length"))
		if r.err == nil && n < 8 {
			r.failf("transform length", "%d is less than 8", n)
		}
		t := decodeTransform(r.sub(n-4, "transform"))
		if r.err == nil && (last == 0) != (r.left() == 0) || last != 0 && last != 3 {
			r.failf("transform last substruc", "value %d inconsistent with position %d", last, len(p.Transforms)+1)
		}
		p.Transforms = append(p.Transforms, t)
	}
	if r.err == nil && nt != len(p.Transforms) {
		r.failf("number of transforms", "says %d, found %d", nt, len(p.Transforms))
	}
	r.done()
	return p
}

func decodeTransform(r *reader) Transform {
	t := Transform{Type: TransformType(r.u8("transform type"))}
	r.u8("reserved")
	t.ID = r.u16("transform ID")
	for r.err == nil && r.left() > 0 {
		typ := r.u16("attribute type")
		if typ&0x8000 == 0 {
			n := int(r.u16("attribute length"))
			t.Other = append(t.Other, Attribute{Type: typ, Data: r.clone(n, "attribute value")})
			continue
		}
		typ &= 0x7fff
		v := r.u16("attribute value")
		if typ == AttrKeyLength && t.KeyLength == 0 && v != 0 {
			t.KeyLength = v
			continue
		}
		t.Other = append(t.Other, Attribute{Type: typ, TV: true, Value: v})
	}
	r.done()
	return t
}

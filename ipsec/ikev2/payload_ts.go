package ikev2

import (
	"fmt"
	"net/netip"
)

// MaxSelectors bounds the traffic selectors in one TS payload.
const MaxSelectors = 64

// TS is a Traffic Selector payload, TSi or TSr depending on Responder.
type TS struct {
	Responder bool
	Selectors []Selector
}

// Selector is one traffic selector: an address range (both ends of the same
// family), a port range and an IP protocol (0: any).
type Selector struct {
	IPProto   uint8
	StartPort uint16
	EndPort   uint16
	Start     netip.Addr
	End       netip.Addr
}

// Type implements Payload.
func (t *TS) Type() PayloadType {
	if t.Responder {
		return PayloadTSr
	}
	return PayloadTSi
}

// SelectorFor returns the selector covering prefix p, all ports, any protocol.
func SelectorFor(p netip.Prefix) Selector {
	p = p.Masked()
	start := p.Addr()
	end := start.AsSlice()
	bits := p.Bits()
	for i := range end {
		for bit := 0; bit < 8; bit++ {
			if i*8+bit >= bits {
				end[i] |= 0x80 >> bit
			}
		}
	}
	e, _ := netip.AddrFromSlice(end)
	return Selector{Start: start, End: e, EndPort: 0xffff}
}

func (t *TS) appendBody(b []byte) ([]byte, error) {
	if len(t.Selectors) == 0 || len(t.Selectors) > MaxSelectors {
		return nil, fmt.Errorf("%d selectors, want 1..%d", len(t.Selectors), MaxSelectors)
	}
	b = append(b, byte(len(t.Selectors)), 0, 0, 0)
	for i, s := range t.Selectors {
		if !s.Start.IsValid() || !s.End.IsValid() || s.Start.Is4() != s.End.Is4() {
			return nil, fmt.Errorf("selector %d: addresses %v-%v not of one family", i, s.Start, s.End)
		}
		typ, n := TSIPv4AddrRange, 16
		if s.Start.Is6() {
			typ, n = TSIPv6AddrRange, 40
		}
		b = append(b, byte(typ), s.IPProto)
		b = appendU16(b, uint16(n))
		b = appendU16(appendU16(b, s.StartPort), s.EndPort)
		b = append(b, s.Start.AsSlice()...)
		b = append(b, s.End.AsSlice()...)
	}
	return b, nil
}

func decodeTS(r *reader, responder bool) *TS {
	t := &TS{Responder: responder}
	n := int(r.u8("number of TSs"))
	r.bytes(3, "reserved")
	if r.err == nil && (n == 0 || n > MaxSelectors) {
		r.failf("number of TSs", "%d, want 1..%d", n, MaxSelectors)
	}
	for i := 0; i < n && r.err == nil; i++ {
		t.Selectors = append(t.Selectors, decodeSelector(r))
	}
	return t
}

func decodeSelector(r *reader) Selector {
	typ := TSType(r.u8("TS type"))
	s := Selector{IPProto: r.u8("IP protocol ID")}
	n := int(r.u16("selector length"))
	want, alen := 16, 4
	switch {
	case r.err != nil:
		return s
	case typ == TSIPv6AddrRange:
		want, alen = 40, 16
	case typ != TSIPv4AddrRange:
		r.failf("TS type", "%d is not an IPv4 or IPv6 address range", typ)
		return s
	}
	if n != want {
		r.failf("selector length", "%d, want %d for TS type %d", n, want, typ)
		return s
	}
	s.StartPort = r.u16("start port")
	s.EndPort = r.u16("end port")
	s.Start, _ = netip.AddrFromSlice(r.bytes(alen, "starting address"))
	s.End, _ = netip.AddrFromSlice(r.bytes(alen, "ending address"))
	return s
}

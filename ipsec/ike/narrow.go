package ike

import (
	"net/netip"

	"ferry/ipsec/ikev2"
)

// Narrow intersects the selectors a peer proposed with the prefixes this
// side allows (RFC 7296 section 2.9) and returns the result as prefixes,
// the form the data planes route. Selectors for one protocol or port
// range are widened to "any" only if they cover everything; otherwise
// they are dropped, as ferry's data planes handle whole-address selectors
// only. An empty result means TS_UNACCEPTABLE.
func Narrow(proposed []ikev2.Selector, allowed []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range proposed {
		if s.IPProto != 0 || s.StartPort != 0 || s.EndPort != 0xffff {
			continue
		}
		for _, a := range allowed {
			lo, hi := a.Masked().Addr(), lastAddr(a)
			if !s.Start.IsValid() || s.Start.BitLen() != lo.BitLen() {
				continue
			}
			if s.Start.Compare(lo) > 0 {
				lo = s.Start
			}
			if s.End.Compare(hi) < 0 {
				hi = s.End
			}
			if lo.Compare(hi) <= 0 {
				out = appendUnique(out, rangePrefixes(lo, hi)...)
			}
		}
	}
	return out
}

// Selectors turns prefixes into "any protocol, all ports" selectors.
func Selectors(ps []netip.Prefix) []ikev2.Selector {
	out := make([]ikev2.Selector, 0, len(ps))
	for _, p := range ps {
		out = append(out, ikev2.SelectorFor(p))
	}
	return out
}

func appendUnique(out []netip.Prefix, ps ...netip.Prefix) []netip.Prefix {
next:
	for _, p := range ps {
		for _, q := range out {
			if p == q {
				continue next
			}
		}
		out = append(out, p)
	}
	return out
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// rangePrefixes covers [lo, hi] with the fewest prefixes.
func rangePrefixes(lo, hi netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for lo.IsValid() && lo.Compare(hi) <= 0 {
		bits := lo.BitLen()
		for bits > 0 {
			p := netip.PrefixFrom(lo, bits-1)
			if p.Masked().Addr() != lo || lastAddr(p).Compare(hi) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(lo, bits)
		out = append(out, p)
		last := lastAddr(p)
		if last == hi {
			break
		}
		lo = last.Next()
	}
	return out
}

var anyV4 = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}

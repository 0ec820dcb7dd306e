package ike

import (
	"net/netip"
	"reflect"
	"testing"

	"ferry/ipsec/ikev2"
)

func sel(a, b string) ikev2.Selector {
	return ikev2.Selector{Start: netip.MustParseAddr(a), End: netip.MustParseAddr(b), EndPort: 0xffff}
}

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestNarrowToResponderSubnets(t *testing.T) {
	for _, tc := range []struct {
		name     string
		proposed []ikev2.Selector
		allowed  []netip.Prefix
		want     []netip.Prefix
	}{
		{"anything narrows to the subnet", []ikev2.Selector{sel("0.0.0.0", "255.255.255.255")}, pfx("10.33.1.0/24"), pfx("10.33.1.0/24")},
		{"a smaller ask is kept", []ikev2.Selector{sel("10.33.1.8", "10.33.1.15")}, pfx("10.33.0.0/16"), pfx("10.33.1.8/29")},
		{"odd range splits", []ikev2.Selector{sel("10.33.1.1", "10.33.1.6")}, pfx("10.33.1.0/24"), pfx("10.33.1.1/32", "10.33.1.2/31", "10.33.1.4/31", "10.33.1.6/32")},
		{"disjoint is refused", []ikev2.Selector{sel("192.168.0.0", "192.168.0.255")}, pfx("10.33.1.0/24"), nil},
		{"port-limited is refused", []ikev2.Selector{{Start: netip.MustParseAddr("10.33.1.0"), End: netip.MustParseAddr("10.33.1.255"), StartPort: 80, EndPort: 80}}, pfx("10.33.1.0/24"), nil},
		{"virtual IP", []ikev2.Selector{sel("0.0.0.0", "255.255.255.255")}, pfx("10.33.200.5/32"), pfx("10.33.200.5/32")},
	} {
		if got := Narrow(tc.proposed, tc.allowed); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Narrow = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPoolNeverLeasesAnAddressTwice(t *testing.T) {
	p, err := NewPool(netip.MustParsePrefix("10.33.200.0/30"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Acquire("peer-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Acquire("peer-b")
	if err != nil || b == a {
		t.Fatalf("second lease %v %v, first %v", b, err, a)
	}
	for _, x := range []netip.Addr{a, b} {
		if x != netip.MustParseAddr("10.33.200.1") && x != netip.MustParseAddr("10.33.200.2") {
			t.Fatalf("leased %v from 10.33.200.0/30: network, broadcast or outside", x)
		}
	}
	if _, err := p.Acquire("peer-c"); err == nil {
		t.Fatal("a /30 leased a third address")
	}
	if again, _ := p.Acquire("peer-a"); again != a {
		t.Errorf("peer-a asked again and got %v, want its %v", again, a)
	}
	p.Release("peer-a")
	c, err := p.Acquire("peer-c")
	if err != nil || c != a {
		t.Fatalf("after release: %v %v, want %v", c, err, a)
	}
}

package ike

import (
	"net/netip"
	"testing"
)

func TestAcquireAtGivesOnlyTheListedAddress(t *testing.T) {
	p, err := NewPool(netip.MustParsePrefix("10.8.1.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("10.8.1.77")
	if err := p.AcquireAt("key-1", a); err != nil {
		t.Fatal(err)
	}
	if err := p.AcquireAt("key-1", a); err != nil {
		t.Fatalf("the same key asking again (a reconnect): %v", err)
	}
	if err := p.AcquireAt("key-2", a); err == nil {
		t.Fatal("a second key got the first key's address")
	}
	for _, bad := range []string{"10.8.2.1", "10.8.1.0", "10.8.1.255"} {
		if err := p.AcquireAt("key-3", netip.MustParseAddr(bad)); err == nil {
			t.Errorf("AcquireAt %s outside the pool's usable addresses succeeded", bad)
		}
	}
	for range 300 {
		if got, err := p.Acquire("dynamic"); err == nil && got == a {
			t.Fatal("a dynamic peer got an address held by a listed key")
		}
		p.Release("dynamic")
	}
	p.Release("key-1")
	if err := p.AcquireAt("key-2", a); err != nil {
		t.Fatalf("after the first key left: %v", err)
	}
}

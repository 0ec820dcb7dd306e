package ike

import (
	"net/netip"
	"strings"
	"testing"

	"ferry/ipsec/authz"
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

// An address the allow list fixes for one key is never handed to a key
// without a fixed address, even before its own key first connects.
func TestDynamicKeysNeverTakeAFixedAddress(t *testing.T) {
	pool, _ := NewPool(netip.MustParsePrefix("10.37.200.0/30")) // .1 and .2
	lb := newLoopback(t, func(c *Config) { c.Pool = pool })
	fixed, fixedPin := lb.initiator(t, "lease-fixed", false)
	at := netip.MustParseAddr("10.37.200.1")
	if err := lb.allow.Add(authz.Entry{Pin: fixedPin, Lease: "lease-fixed", VirtualIP: at}); err != nil {
		t.Fatal(err)
	}
	for _, cn := range []string{"lease-dyn-1", "lease-dyn-2"} {
		d, _ := lb.initiator(t, cn, true)
		if err := lb.connect(d); err == nil {
			if vip := d.Status()[0].VirtualIP; vip == at.String() {
				t.Fatalf("%s got %s, fixed for lease-fixed", cn, vip)
			}
		} else if !strings.Contains(err.Error(), "INTERNAL_ADDRESS_FAILURE") {
			t.Fatalf("%s: %v", cn, err)
		}
	}
	if err := lb.connect(fixed); err != nil {
		t.Fatalf("lease-fixed after two keys without a fixed address connected: %v; want its %s", err, at)
	}
	if vip := fixed.Status()[0].VirtualIP; vip != at.String() {
		t.Fatalf("lease-fixed got %s; want %s", vip, at)
	}
}

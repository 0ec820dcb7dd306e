package netboot

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// failingLeases is a store whose writes fail.
type failingLeases struct{ *MemLeases }

func (failingLeases) Put(context.Context, Lease) error { return errors.New("disk full") }

func leaseServer(t testing.TB, st Leases, p Policy) *Server {
	t.Helper()
	cfg := testConfig(ModeDHCP, nil)
	cfg.Leases = st
	s, err := New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// acquire runs DISCOVER/REQUEST for mac and returns the acknowledged address.
func acquire(t *testing.T, s *Server, mac net.HardwareAddr) netip.Addr {
	t.Helper()
	offer := mustReply(t, s, discover(t, []dhcpv4.Modifier{dhcpv4.WithHwAddr(mac)}), portDHCP)
	req, _ := dhcpv4.NewRequestFromOffer(offer)
	ack := mustReply(t, s, req, portDHCP)
	if ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("%s: REQUEST for %v got %s", mac, offer.YourIPAddr, ack.MessageType())
	}
	a, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
	return a
}

func offered(t *testing.T, s *Server, mac net.HardwareAddr) (netip.Addr, error) {
	t.Helper()
	r, err := s.reply(bg, discover(t, []dhcpv4.Modifier{dhcpv4.WithHwAddr(mac)}), portDHCP)
	if err != nil {
		return netip.Addr{}, err
	}
	a, _ := netip.AddrFromSlice(r.YourIPAddr.To4())
	return a, nil
}

func TestLeaseSurvivesRestartAndIsNeverOfferedToAnotherMAC(t *testing.T) {
	st := NewMemLeases()
	held := acquire(t, leaseServer(t, st, testPolicy(t)), macKnown)

	s := leaseServer(t, st, testPolicy(t)) // the restart: same store, new table
	if a, err := offered(t, s, macOther); err != nil || a == held {
		t.Fatalf("after restart, another MAC was offered %v (err %v); %v is held by %s", a, err, held, macKnown)
	}
	if a, err := offered(t, s, macKnown); err != nil || a != held {
		t.Fatalf("after restart, %s was offered %v (err %v), want its lease %v", macKnown, a, err, held)
	}
	// INIT-REBOOT (no server id) from the holder is acknowledged, not ignored.
	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(macKnown), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(held.AsSlice())))
	if r := mustReply(t, s, req, portDHCP); r.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("INIT-REBOOT of the stored lease got %s", r.MessageType())
	}
}

func TestLeaseIsNotAcknowledgedUntilStored(t *testing.T) {
	s := leaseServer(t, failingLeases{NewMemLeases()}, testPolicy(t))
	offer := mustReply(t, s, discover(t, []dhcpv4.Modifier{dhcpv4.WithHwAddr(macKnown)}), portDHCP)
	req, _ := dhcpv4.NewRequestFromOffer(offer)
	if r, err := s.reply(bg, req, portDHCP); err == nil {
		t.Fatalf("store refused the lease, yet the REQUEST got %s", r.MessageType())
	}
}

func TestReleasedLeaseLeavesTheStore(t *testing.T) {
	st := NewMemLeases()
	s := leaseServer(t, st, testPolicy(t))
	a := acquire(t, s, macKnown)
	rel, _ := dhcpv4.New(dhcpv4.WithHwAddr(macKnown), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease),
		dhcpv4.WithClientIP(a.AsSlice()))
	s.reply(bg, rel, portDHCP)
	if ls, _ := st.Load(bg); len(ls) != 0 {
		t.Fatalf("after DHCPRELEASE the store still holds %v", ls)
	}
}

// TestLeaseEndedByTheStoreOwnerIsFreed: the lender deletes a returned
// server's lease from the store; the running server gives the address to
// another MAC once the pool has no other.
func TestLeaseEndedByTheStoreOwnerIsFreed(t *testing.T) {
	st := NewMemLeases()
	s := leaseServer(t, st, policyFunc(nil))
	third := net.HardwareAddr{2, 0, 0, 0, 0, 3}
	a := acquire(t, s, macKnown)
	acquire(t, s, macOther)
	if got, err := offered(t, s, third); err == nil {
		t.Fatalf("full pool offered %v to a third MAC", got)
	}
	st.Delete(bg, macKnown)
	if got, err := offered(t, s, third); err != nil || got != a {
		t.Fatalf("after the owner ended %s's lease the third MAC got %v (err %v), want %v", macKnown, got, err, a)
	}
}

func TestStoredLeasesAreValidatedOnLoad(t *testing.T) {
	now := time.Now()
	in := netip.MustParseAddr("10.42.0.100")
	st := NewMemLeases()
	for _, l := range []Lease{
		{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Addr: netip.MustParseAddr("10.42.0.7"), Expires: now.Add(time.Hour)}, // outside the pool
		{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, Addr: in, Expires: now.Add(-time.Second)},                            // expired
		{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}, Addr: in, Expires: now.Add(time.Hour)},                               // holds .100
		{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 4}, Addr: in, Expires: now.Add(time.Hour)},                               // same address
		{MAC: net.HardwareAddr{2, 0, 0, 0}, Addr: netip.MustParseAddr("10.42.0.101"), Expires: now.Add(time.Hour)},     // not Ethernet
	} {
		st.Put(bg, l)
	}
	s := leaseServer(t, st, policyFunc(nil))
	if err := s.leases.load(bg, now); err != nil {
		t.Fatal(err)
	}
	if len(s.leases.byMAC) != 1 || s.leases.byAddr[in] != "02:00:00:00:00:03" {
		t.Fatalf("loaded %v, want only 02:00:00:00:00:03 on %v", s.leases.byAddr, in)
	}
	if got, err := offered(t, s, net.HardwareAddr{2, 0, 0, 0, 0, 4}); err != nil || got == in {
		t.Fatalf("the duplicate holder was offered %v (err %v)", got, err)
	}
	if ls, _ := st.Load(bg); len(ls) != 4 {
		t.Fatalf("store has %d leases after load, want the expired one deleted (4 left)", len(ls))
	}
}

// FuzzLoadLeases: whatever the store returns, no address is held by two
// MACs and every held address is in the pool.
func FuzzLoadLeases(f *testing.F) {
	f.Add([]byte{2, 0, 0, 0, 0, 1, 100, 1, 2, 0, 0, 0, 0, 2, 100, 1, 2, 0, 0, 0, 0, 1, 101, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 7, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		now := time.Unix(1e9, 0)
		st := NewMemLeases()
		for ; len(b) >= 8; b = b[8:] {
			exp := now.Add(time.Duration(int8(b[7])) * time.Minute)
			st.Put(bg, Lease{MAC: net.HardwareAddr(b[:6]), Addr: netip.AddrFrom4([4]byte{10, 42, 0, b[6]}), Expires: exp})
		}
		cfg := testConfig(ModeDHCP, nil)
		cfg.Leases, cfg.MaxLeases = st, 3
		s, err := New(cfg, policyFunc(nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.leases.load(bg, now); err != nil {
			t.Fatal(err)
		}
		if len(s.leases.byMAC) != len(s.leases.byAddr) || len(s.leases.byMAC) > 3 {
			t.Fatalf("%d MACs hold %d addresses", len(s.leases.byMAC), len(s.leases.byAddr))
		}
		for a, mac := range s.leases.byAddr {
			if !cfg.Pool.contains(a) || s.leases.byMAC[mac].addr != a {
				t.Fatalf("%v held by %s: outside the pool or inconsistent", a, mac)
			}
		}
	})
}

package lender

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"ferry/api"
	"ferry/netboot"
)

// A lent server that enrolled runs the borrower's root, whose DHCP client
// (systemd-networkd, dhclient, NetworkManager) asks for an address and
// renews it for the whole lease. The lender answers it with the address
// A already holds and never another (a server enrolled without a lease
// here gets no offer); its PXE ROM still gets the boot file, so that a
// second boot's script fetch reaches the lender as a conflict
// (binding_test.go).
func TestNetbootAnswersAnEnrolledServerWithItsAddressOnly(t *testing.T) {
	ctx := context.Background()
	f, _ := fixtureAt(t, 2)
	if _, err := f.m.RequestLease(ctx, leaseReq("key-00000571", 2)); err != nil {
		t.Fatal(err)
	}
	nb := f.netboot(t)
	held := dhcpAcquire(t, nb, 0) // image A's DHCP
	// Server 0 fetched its script from the address the lender's DHCP gave
	// it; server 1 from an address given by another DHCP server.
	p := policy{m: f.m, cfg: nbConf}
	for i, from := range []netip.Addr{held, testFrom} {
		mac, _ := net.ParseMAC(macOf(i))
		leased := netip.Addr{}
		if i == 0 {
			leased = held
		}
		b, _ := f.m.BootFor(macOf(i))
		if _, err := p.Boot(ctx, netboot.Fetch{MAC: mac, Leased: leased, From: from}); err != nil {
			t.Fatal(err)
		}
		_, csr := csrFor(t, b.LeaseID+"/"+b.ServerID)
		if _, err := f.m.Enroll(ctx, from, api.EnrollRequest{Token: b.Token, MAC: macOf(i), CSR: csr}); err != nil {
			t.Fatal(err)
		}
	}

	// The root's client: DISCOVER, REQUEST, then a renewal from the address.
	if a := dhcpAcquire(t, nb, 0); a != held {
		t.Fatalf("enrolled %s got %v from DISCOVER/REQUEST, want the address it holds %v", macOf(0), a, held)
	}
	mac, _ := net.ParseMAC(macOf(0))
	renew, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(held.AsSlice()))
	ack, err := nb.Answer(ctx, renew)
	if err != nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(held.AsSlice()) {
		t.Fatalf("renewal of %v: %v %v, want an ACK of it", held, ack, err)
	}

	// Its PXE ROM: the same address, with the boot file.
	pxe, _ := dhcpv4.NewDiscovery(mac, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)), dhcpv4.WithUserClass("iPXE", false))
	if offer, err := nb.Answer(ctx, pxe); err != nil || !offer.YourIPAddr.Equal(held.AsSlice()) || offer.BootFileName == "" && !offer.Options.Has(dhcpv4.OptionBootfileName) {
		t.Fatalf("enrolled %s's iPXE DISCOVER got %v %v, want its address %v and its script URL", mac, offer, err, held)
	}
	other := netip.MustParseAddr(nbConf.PoolFirst)
	if other == held {
		other = netip.MustParseAddr(nbConf.PoolLast)
	}
	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(other.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(nbConf.ServerIP))))
	if nak, err := nb.Answer(ctx, req); err == nil && nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("enrolled %s asking for %v got %v, want a NAK", mac, other, nak.MessageType())
	}
	if a := dhcpAcquire(t, nb, 1); a.IsValid() {
		t.Fatalf("%s enrolled without an address here got %v, want no offer", macOf(1), a)
	}
}

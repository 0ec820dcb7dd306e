package netboot

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// pxeROM is what a BIOS PXE ROM sends.
func pxeROM(mac net.HardwareAddr, arch iana.Arch) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithHwAddr(mac),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, make([]byte, 16)...))),
	}
}

// ipxe is what iPXE sends: PXEClient plus user class "iPXE".
func ipxe(mac net.HardwareAddr) []dhcpv4.Modifier {
	return append(pxeROM(mac, iana.INTEL_X86PC), dhcpv4.WithUserClass("iPXE", false))
}

func discover(t testing.TB, mods []dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	d, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustReply(t *testing.T, s *Server, req *dhcpv4.DHCPv4, p port) *dhcpv4.DHCPv4 {
	t.Helper()
	r, err := s.reply(bg, req, p)
	if err != nil {
		t.Fatalf("%s from %s: %v", req.MessageType(), req.ClientHWAddr, err)
	}
	return r
}

func TestPXEROMGetsIPXEBinaryByTFTP(t *testing.T) {
	s := newTestServer(t, ModeDHCP, testPolicy(t), nil)
	for arch, want := range map[iana.Arch]string{iana.INTEL_X86PC: "undionly.kpxe", iana.EFI_X86_64: "ipxe.efi"} {
		r := mustReply(t, s, discover(t, pxeROM(macKnown, arch)), portDHCP)
		if r.MessageType() != dhcpv4.MessageTypeOffer || r.BootFileNameOption() != want {
			t.Errorf("arch %v: %s with file %q, want OFFER with %q", arch, r.MessageType(), r.BootFileNameOption(), want)
		}
		if !r.ServerIPAddr.Equal(net.IPv4(10, 42, 0, 1)) || r.TFTPServerName() != "10.42.0.1" {
			t.Errorf("arch %v: next-server %v, option 66 %q", arch, r.ServerIPAddr, r.TFTPServerName())
		}
		if r.ClassIdentifier() != "PXEClient" || r.Options.Get(dhcpv4.OptionClientMachineIdentifier) == nil {
			t.Errorf("arch %v: vendor class %q, option 97 echoed %v", arch, r.ClassIdentifier(), r.Options.Has(dhcpv4.OptionClientMachineIdentifier))
		}
	}
}

func TestIPXEGetsItsScriptURL(t *testing.T) {
	s := newTestServer(t, ModeDHCP, testPolicy(t), nil)
	r := mustReply(t, s, discover(t, ipxe(macKnown)), portDHCP)
	f := r.BootFileNameOption()
	if !strings.HasPrefix(f, "http://10.42.0.1:8080/ipxe/") {
		t.Fatalf("boot file %q, want the script URL", f)
	}
	tk, err := s.seal.open(strings.TrimPrefix(f, "http://10.42.0.1:8080/ipxe/"), kindScript)
	if err != nil || tk.MAC.String() != macKnown.String() {
		t.Fatalf("script URL does not open for %s: %v", macKnown, err)
	}
}

func TestUnknownMACGetsNoOffer(t *testing.T) {
	for _, m := range []Mode{ModeDHCP, ModeProxyDHCP} {
		s := newTestServer(t, m, testPolicy(t), nil)
		if r, err := s.reply(bg, discover(t, pxeROM(macUnknown, 0)), portDHCP); !errors.Is(err, errIgnore) {
			t.Errorf("%s: unknown MAC got %v, err %v", m, r, err)
		}
	}
}

func TestDHCPModeHandsOutAddressWithOptions(t *testing.T) {
	s := newTestServer(t, ModeDHCP, testPolicy(t), nil)
	offer := mustReply(t, s, discover(t, pxeROM(macKnown, 0)), portDHCP)
	req, _ := dhcpv4.NewRequestFromOffer(offer)
	ack := mustReply(t, s, req, portDHCP)
	if ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Fatalf("%s for %v, offered %v", ack.MessageType(), ack.YourIPAddr, offer.YourIPAddr)
	}
	if ack.SubnetMask().String() != "ffffff00" || !ack.Router()[0].Equal(net.IPv4(10, 42, 0, 1)) || ack.IPAddressLeaseTime(0).Hours() != 1 {
		t.Fatalf("mask %v router %v lease %v", ack.SubnetMask(), ack.Router(), ack.IPAddressLeaseTime(0))
	}
}

func TestLeaseNeverHandedOutTwice(t *testing.T) {
	s := newTestServer(t, ModeDHCP, policyFunc(nil), nil) // admits everyone
	seen := map[string]string{}
	for i := range 2 {
		mac := net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}
		offer := mustReply(t, s, discover(t, []dhcpv4.Modifier{dhcpv4.WithHwAddr(mac)}), portDHCP)
		if prev, dup := seen[offer.YourIPAddr.String()]; dup {
			t.Fatalf("%v offered to %s and %s", offer.YourIPAddr, prev, mac)
		}
		seen[offer.YourIPAddr.String()] = mac.String()
	}
	// the pool (2 addresses) is exhausted: a third machine gets nothing
	third := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	if r, err := s.reply(bg, discover(t, []dhcpv4.Modifier{dhcpv4.WithHwAddr(third)}), portDHCP); err == nil {
		t.Fatalf("third machine offered %v from a full pool", r.YourIPAddr)
	}
}

func TestRequestForAnotherMachinesAddressGetsNak(t *testing.T) {
	s := newTestServer(t, ModeDHCP, testPolicy(t), nil)
	offer := mustReply(t, s, discover(t, pxeROM(macKnown, 0)), portDHCP)
	req, _ := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithHwAddr(macOther))
	if r := mustReply(t, s, req, portDHCP); r.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("other MAC requesting %v got %s", offer.YourIPAddr, r.MessageType())
	}
}

func TestInitRebootForAnUnknownLeaseIsIgnored(t *testing.T) {
	s := newTestServer(t, ModeDHCP, testPolicy(t), nil)
	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(macKnown), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 42, 0, 77))))
	if r, err := s.reply(bg, req, portDHCP); !errors.Is(err, errIgnore) {
		t.Fatalf("INIT-REBOOT without a lease here got %v", r)
	}
}

func TestProxyDHCPOfferCarriesBootOptionsButNoAddress(t *testing.T) {
	s := newTestServer(t, ModeProxyDHCP, testPolicy(t), nil)
	r := mustReply(t, s, discover(t, pxeROM(macKnown, 0)), portDHCP)
	if !r.YourIPAddr.IsUnspecified() || r.BootFileNameOption() != "undionly.kpxe" || r.ClassIdentifier() != "PXEClient" {
		t.Fatalf("proxy offer: yiaddr %v file %q class %q", r.YourIPAddr, r.BootFileNameOption(), r.ClassIdentifier())
	}
	if v := r.Options.Get(dhcpv4.OptionVendorSpecificInformation); string(v) != "\x06\x01\x08\xff" {
		t.Fatalf("option 43 = %x, want discovery control 8", v)
	}
}

func TestProxyDHCPAnswersRequestOnPort4011Only(t *testing.T) {
	s := newTestServer(t, ModeProxyDHCP, testPolicy(t), nil)
	req, _ := dhcpv4.New(append(ipxe(macKnown), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest))...)
	if _, err := s.reply(bg, req, portDHCP); !errors.Is(err, errIgnore) {
		t.Fatalf("REQUEST on 67 answered in proxy mode: %v", err)
	}
	r := mustReply(t, s, req, portPXE)
	if r.MessageType() != dhcpv4.MessageTypeAck || !strings.Contains(r.BootFileNameOption(), "/ipxe/") {
		t.Fatalf("4011: %s with %q", r.MessageType(), r.BootFileNameOption())
	}
}

func TestProxyDHCPIgnoresNonPXEClients(t *testing.T) {
	s := newTestServer(t, ModeProxyDHCP, testPolicy(t), nil)
	if _, err := s.reply(bg, discover(t, []dhcpv4.Modifier{dhcpv4.WithHwAddr(macKnown)}), portDHCP); !errors.Is(err, errIgnore) {
		t.Fatalf("plain DHCP client answered in proxy mode: %v", err)
	}
}

func FuzzReply(f *testing.F) {
	for _, mods := range [][]dhcpv4.Modifier{pxeROM(macKnown, 0), ipxe(macKnown), pxeROM(macKnown, 7), httpBootClient(macKnown, 16)} {
		d, _ := dhcpv4.New(append(mods, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))...)
		f.Add(d.ToBytes(), false)
		r, _ := dhcpv4.New(append(mods, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest))...)
		f.Add(r.ToBytes(), true)
	}
	srv := map[bool]*Server{false: newTestServer(f, ModeDHCP, testPolicy(f), nil), true: newTestServer(f, ModeProxyDHCP, testPolicy(f), nil)}
	f.Fuzz(func(t *testing.T, b []byte, proxy bool) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		for _, p := range []port{portDHCP, portPXE} {
			r, err := srv[proxy].reply(bg, req, p)
			if err == nil && len(r.ToBytes()) > 1500 {
				t.Fatalf("reply of %d bytes does not fit a frame", len(r.ToBytes()))
			}
		}
	})
}

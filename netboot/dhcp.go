package netboot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// port says where a DHCP request arrived: 67 (DHCP/ProxyDHCP) or 4011 (PXE
// boot server discovery, ProxyDHCP only).
type port int

const (
	portDHCP port = 67
	portPXE  port = 4011
)

// errIgnore means: send nothing (not for us, not admitted, not a PXE
// client in ProxyDHCP mode).
var errIgnore = errors.New("ignored")

// client is what a request says about the machine.
type client struct {
	mac  net.HardwareAddr
	pxe  bool // vendor class PXEClient
	http bool // vendor class HTTPClient: UEFI HTTP boot
	ipxe bool // user class iPXE or option 175
	arch iana.Arch
}

func describe(req *dhcpv4.DHCPv4) client {
	c := client{mac: req.ClientHWAddr}
	c.pxe = strings.HasPrefix(req.ClassIdentifier(), "PXEClient")
	c.http = strings.HasPrefix(req.ClassIdentifier(), "HTTPClient")
	for _, uc := range req.UserClass() {
		if uc == "iPXE" {
			c.ipxe = true
		}
	}
	if req.Options.Has(dhcpv4.OptionEtherboot) {
		c.ipxe = true
	}
	if a := req.ClientArch(); len(a) > 0 {
		c.arch = a[0]
	}
	return c
}

// Answer replies to a request that arrived on port 67 as the listener
// would, without touching the network; an error means silence and says
// why. It lets a caller (a relay, the lender's tests) drive the server
// without a link.
func (s *Server) Answer(ctx context.Context, req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	resp, err := s.reply(ctx, req, portDHCP)
	switch {
	case errors.Is(err, errIgnore):
		s.cfg.Events.DHCP("ignored", "")
	case err != nil:
		s.cfg.Events.DHCP("failed", "")
	default:
		s.cfg.Events.DHCP("answered", resp.MessageType().String())
	}
	return resp, err
}

// reply answers req, or returns errIgnore (wrapped with the reason) for
// silence. It never touches the network: the listeners call it.
func (s *Server) reply(ctx context.Context, req *dhcpv4.DHCPv4, p port) (*dhcpv4.DHCPv4, error) {
	if req.OpCode != dhcpv4.OpcodeBootRequest || req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return nil, fmt.Errorf("%w: not an Ethernet BOOTREQUEST", errIgnore)
	}
	c := describe(req)
	err := s.policy.Admit(ctx, c.mac)
	heldOnly := errors.Is(err, ErrHeldAddressOnly)
	if err != nil && !heldOnly {
		return nil, fmt.Errorf("%w: policy: %v", errIgnore, err)
	}
	var resp *dhcpv4.DHCPv4
	if s.cfg.Mode == ModeProxyDHCP {
		resp, err = s.proxyReply(req, c, p)
	} else {
		resp, err = s.dhcpReply(ctx, req, c, heldOnly)
	}
	s.timeDHCP(req, resp, c)
	return resp, err
}

// timeDHCP marks a DISCOVER and reports the exchange at its ACK (at the
// OFFER in ProxyDHCP on port 67, where the firmware may send no REQUEST).
func (s *Server) timeDHCP(req, resp *dhcpv4.DHCPv4, c client) {
	now := s.now()
	if req.MessageType() == dhcpv4.MessageTypeDiscover {
		s.disc.begin(c.mac, now)
	}
	if resp == nil {
		return
	}
	t := resp.MessageType()
	if t != dhcpv4.MessageTypeAck && !(t == dhcpv4.MessageTypeOffer && s.cfg.Mode == ModeProxyDHCP) {
		return
	}
	step := StepDHCPOS
	switch {
	case c.ipxe:
		step = StepDHCPiPXE
	case c.pxe:
		step = StepDHCPFirmware
	}
	s.observe(Event{MAC: c.mac, Step: step, Start: s.disc.end(c.mac, now), End: now})
}

// dhcpReply answers as the network's DHCP server; held restricts a
// DISCOVER to the address the MAC already holds (ErrHeldAddressOnly).
func (s *Server) dhcpReply(ctx context.Context, req *dhcpv4.DHCPv4, c client, held bool) (*dhcpv4.DHCPv4, error) {
	now := s.now()
	var typ dhcpv4.MessageType
	var addr netip.Addr
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		a, err := s.leases.offer(ctx, c.mac, now, held)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errIgnore, err)
		}
		typ, addr = dhcpv4.MessageTypeOffer, a
	case dhcpv4.MessageTypeRequest:
		sid := req.ServerIdentifier()
		if sid != nil && !sid.Equal(s.cfg.ServerIP.AsSlice()) {
			return nil, fmt.Errorf("%w: REQUEST for server %v", errIgnore, sid)
		}
		want := req.RequestedIPAddress()
		if want == nil || want.IsUnspecified() {
			want = req.ClientIPAddr
		}
		a, _ := netip.AddrFromSlice(want.To4())
		known, ok, err := s.leases.confirm(ctx, c.mac, a, now)
		if err != nil {
			return nil, err // no ACK for a lease not stored: the client asks again
		}
		if !known && sid == nil {
			// INIT-REBOOT from a lease we do not hold (RFC 2131 4.3.2):
			// stay silent, another server may own it.
			return nil, fmt.Errorf("%w: INIT-REBOOT for %v, no lease here", errIgnore, a)
		}
		if !ok {
			return s.nak(req)
		}
		typ, addr = dhcpv4.MessageTypeAck, a
	case dhcpv4.MessageTypeRelease:
		a, _ := netip.AddrFromSlice(req.ClientIPAddr.To4())
		if err := s.leases.release(ctx, c.mac, a, now); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: released %v", errIgnore, a)
	default:
		return nil, fmt.Errorf("%w: message type %v", errIgnore, req.MessageType())
	}
	resp, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(addr.AsSlice()),
		dhcpv4.WithServerIP(s.cfg.ServerIP.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.cfg.ServerIP.AsSlice())),
		dhcpv4.WithNetmask(net.CIDRMask(s.cfg.Pool.Prefix.Bits(), 32)),
		dhcpv4.WithLeaseTime(uint32(s.cfg.Pool.LeaseTime.Seconds())),
	)
	if err != nil {
		return nil, err
	}
	if s.cfg.Pool.Router.IsValid() {
		resp.UpdateOption(dhcpv4.OptRouter(s.cfg.Pool.Router.AsSlice()))
	}
	if len(s.cfg.Pool.DNS) > 0 {
		var ips []net.IP
		for _, d := range s.cfg.Pool.DNS {
			ips = append(ips, d.AsSlice())
		}
		resp.UpdateOption(dhcpv4.OptDNS(ips...))
	}
	if c.pxe || c.http || c.ipxe {
		if err := s.bootOptions(resp, req, c, addr); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func (s *Server) nak(req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	return dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.cfg.ServerIP.AsSlice())))
}

// proxyReply adds only boot information: no address (yiaddr stays zero),
// as PXE spec's ProxyDHCP does, on port 67 (OFFER to a DISCOVER) and on
// port 4011 (ACK to a REQUEST).
func (s *Server) proxyReply(req *dhcpv4.DHCPv4, c client, p port) (*dhcpv4.DHCPv4, error) {
	if !c.pxe && !c.http {
		return nil, fmt.Errorf("%w: ProxyDHCP answers PXEClient and HTTPClient only", errIgnore)
	}
	typ := dhcpv4.MessageTypeOffer
	switch {
	case p == portDHCP && req.MessageType() == dhcpv4.MessageTypeDiscover:
	case p == portPXE && (req.MessageType() == dhcpv4.MessageTypeRequest || req.MessageType() == dhcpv4.MessageTypeInform):
		typ = dhcpv4.MessageTypeAck
	default:
		return nil, fmt.Errorf("%w: ProxyDHCP port %d ignores %v", errIgnore, p, req.MessageType())
	}
	resp, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithServerIP(s.cfg.ServerIP.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.cfg.ServerIP.AsSlice())),
	)
	if err != nil {
		return nil, err
	}
	return resp, s.bootOptions(resp, req, c, netip.Addr{})
}

// bootOptions chainloads: a PXE ROM gets the iPXE binary for its
// architecture over TFTP; a UEFI HTTP boot client gets a sealed HTTP URL of
// iPXE's EFI build; iPXE gets the sealed URL of its script, which carries
// leased, the address given with it (invalid in ProxyDHCP), so the policy
// can tell whether the script is fetched from there.
func (s *Server) bootOptions(resp, req *dhcpv4.DHCPv4, c client, leased netip.Addr) error {
	resp.ServerIPAddr = s.cfg.ServerIP.AsSlice()
	if guid := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); guid != nil {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
	}
	switch {
	case c.ipxe:
		s.pxeVendor(resp, c)
		resp.UpdateOption(dhcpv4.OptBootFileName(s.scriptURL(c.mac, leased)))
		return nil
	case c.http:
		// UEFI HTTP boot (UEFI 2.x, "HTTP Boot"): the firmware takes only
		// an offer that names HTTPClient in option 60 and a URL as its
		// boot file; it then downloads and starts that EFI image.
		if !httpBootArch(c.arch) {
			return fmt.Errorf("%w: HTTP boot client architecture %v has no iPXE binary", errIgnore, c.arch)
		}
		resp.UpdateOption(dhcpv4.OptClassIdentifier("HTTPClient"))
		resp.UpdateOption(dhcpv4.OptBootFileName(s.romURL(c.mac)))
		return nil
	}
	s.pxeVendor(resp, c)
	file, err := s.romFile(c.arch)
	if err != nil {
		return fmt.Errorf("%w: %v", errIgnore, err)
	}
	resp.UpdateOption(dhcpv4.OptTFTPServerName(s.cfg.ServerIP.String()))
	resp.UpdateOption(dhcpv4.OptBootFileName(file))
	return nil
}

// pxeVendor answers a PXEClient with its vendor class and the PXE vendor
// options: discovery control 8 = boot the file named here, no boot server
// discovery or menu.
func (s *Server) pxeVendor(resp *dhcpv4.DHCPv4, c client) {
	if !c.pxe {
		return
	}
	resp.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
	resp.UpdateOption(dhcpv4.Option{Code: dhcpv4.OptionVendorSpecificInformation,
		Value: dhcpv4.OptionGeneric{Data: []byte{6, 1, 8, 255}}})
}

// romFile picks the iPXE binary for a PXE ROM's architecture (option 93).
// RFC 4578 and IANA's registry disagree on which of 7 and 9 is "EFI BC"
// and which "EFI x86-64"; firmware in the field sends 7 for x86-64
// (OVMF, most vendors) and 9 from some older ones: both get the x86-64
// EFI build.
func (s *Server) romFile(a iana.Arch) (string, error) {
	switch a {
	case iana.INTEL_X86PC:
		return s.cfg.BIOSFile, nil
	case iana.EFI_X86_64, iana.EFI_BC:
		return s.cfg.EFIFile, nil
	}
	return "", fmt.Errorf("client architecture %v has no iPXE binary", a)
}

// httpBootArch says whether an HTTP boot client (option 93 types 15-20 are
// the HTTP variants) can run iPXE's x86-64 EFI build: only x64 UEFI (16).
func httpBootArch(a iana.Arch) bool { return a == iana.EFI_X86_64_HTTP }

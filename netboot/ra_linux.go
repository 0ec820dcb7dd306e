package netboot

import (
	"context"
	"errors"
	"fmt"
	"net"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// iPXE configures IPv6 beside DHCPv4 and fetches nothing until both are
// done: on a link without an IPv6 router it sends router solicitations
// for about 16 s before it gives up (the lab's captures: DHCP ACK, then
// nothing but solicitations, then the script's SYN 16.2 s later). Any
// solicited router advertisement without the managed and other flags ends
// its IPv6 configuration at once (iPXE's ndp.c). serveRA, in ModeDHCP (the
// network is ferry's), answers each solicitation with one that announces
// nothing: router lifetime 0 (no default router), no prefix, no flags.

// raMessage is the advertisement: ICMPv6 type 134, everything zero but
// the source link-layer address option; the kernel fills the checksum.
func raMessage(mac net.HardwareAddr) []byte {
	b := make([]byte, 16, 16+8)
	b[0] = byte(ipv6.ICMPTypeRouterAdvertisement)
	if len(mac) == 6 {
		b = append(b, 1, 1) // source link-layer address, 8 bytes
		b = append(b, mac...)
	}
	return b
}

var allNodes = net.ParseIP("ff02::1")

func (s *Server) serveRA(ctx context.Context) error {
	ifi, err := net.InterfaceByName(s.cfg.Interface)
	if err != nil {
		return fmt.Errorf("netboot: router advertisements: %w", err)
	}
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return fmt.Errorf("netboot: router advertisements: %w", err)
	}
	context.AfterFunc(ctx, func() { c.Close() })
	p := c.IPv6PacketConn()
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	err = errors.Join(p.SetICMPFilter(&f), p.JoinGroup(ifi, &net.IPAddr{IP: net.ParseIP("ff02::2")}),
		p.SetControlMessage(ipv6.FlagInterface|ipv6.FlagHopLimit, true), p.SetMulticastHopLimit(255), p.SetHopLimit(255))
	if err != nil {
		c.Close()
		return fmt.Errorf("netboot: router advertisements on %s: %w", s.cfg.Interface, err)
	}
	s.log.Info("netboot: answering IPv6 router solicitations with an empty advertisement", "interface", s.cfg.Interface)
	ra := raMessage(ifi.HardwareAddr)
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := p.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("netboot: router advertisements: %w", err)
		}
		// RFC 4861 6.1.1: hop limit 255 (on-link), type 133, code 0.
		if cm == nil || cm.IfIndex != ifi.Index || cm.HopLimit != 255 || n < 8 || buf[0] != byte(ipv6.ICMPTypeRouterSolicitation) || buf[1] != 0 {
			continue
		}
		dst := &net.IPAddr{IP: allNodes, Zone: ifi.Name}
		if _, err := p.WriteTo(ra, &ipv6.ControlMessage{IfIndex: ifi.Index, HopLimit: 255}, dst); err != nil {
			s.log.Warn("netboot: router advertisement not sent", "to", src.String(), "err", err)
			continue
		}
		s.log.Debug("netboot: router advertisement sent", "solicited_by", src.String())
	}
}

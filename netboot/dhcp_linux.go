package netboot

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// maxInFlight bounds concurrent DHCP handlers (server4 starts one
// goroutine per packet); beyond it packets are dropped, as on a busy link.
const maxInFlight = 64

// serveDHCP listens on port 67 of cfg.Interface, and in ProxyDHCP mode on
// port 4011 too.
func (s *Server) serveDHCP(ctx context.Context) error {
	ports := []port{portDHCP}
	if s.cfg.Mode == ModeProxyDHCP {
		ports = append(ports, portPXE)
	}
	sem := make(chan struct{}, maxInFlight)
	errc := make(chan error, len(ports))
	for _, p := range ports {
		srv, err := server4.NewServer(s.cfg.Interface, &net.UDPAddr{Port: int(p)}, s.handler(ctx, p, sem))
		if err != nil {
			return fmt.Errorf("netboot: dhcp on %s port %d: %w", s.cfg.Interface, p, err)
		}
		context.AfterFunc(ctx, func() { srv.Close() })
		s.log.Info("netboot: dhcp listening", "interface", s.cfg.Interface, "port", int(p), "mode", s.cfg.Mode.String())
		go func() { errc <- srv.Serve() }()
	}
	err := <-errc
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("netboot: dhcp on %s: %w", s.cfg.Interface, err)
}

func (s *Server) handler(ctx context.Context, p port, sem chan struct{}) server4.Handler {
	return func(conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4) {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		default:
			s.log.Warn("netboot: dhcp busy, packet dropped", "mac", req.ClientHWAddr.String())
			return
		}
		log := s.log.With("mac", req.ClientHWAddr.String(), "type", req.MessageType().String(), "port", int(p))
		resp, err := s.reply(ctx, req, p)
		if errors.Is(err, errIgnore) {
			log.Debug("netboot: dhcp silent", "why", err)
			s.cfg.Events.DHCP("ignored", "")
			return
		}
		if err != nil {
			log.Error("netboot: dhcp reply", "err", err)
			s.cfg.Events.DHCP("failed", "")
			return
		}
		dst := replyAddr(peer, req)
		if _, err := conn.WriteTo(resp.ToBytes(), dst); err != nil {
			log.Error("netboot: dhcp send", "to", dst.String(), "err", err)
			s.cfg.Events.DHCP("failed", resp.MessageType().String())
			return
		}
		s.cfg.Events.DHCP("answered", resp.MessageType().String())
		log.Info("netboot: dhcp answered", "reply", resp.MessageType().String(), "yiaddr", resp.YourIPAddr.String(), "file", resp.BootFileNameOption())
	}
}

// replyAddr: through a relay to the relay, else where the request came
// from (server4 already turned a 0.0.0.0 source into the broadcast address).
func replyAddr(peer net.Addr, req *dhcpv4.DHCPv4) net.Addr {
	if !req.GatewayIPAddr.IsUnspecified() && req.GatewayIPAddr != nil {
		return &net.UDPAddr{IP: req.GatewayIPAddr, Port: dhcpv4.ServerPort}
	}
	return peer
}

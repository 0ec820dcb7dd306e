package borrower

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"ferry/gatewayctl"
)

// Key is one enrolled server's one-time key the gateway must let in.
type Key struct {
	Lease, Server, Pin string // Lease is the lender's lease id
	Expires            time.Time
	VIP                netip.Addr // the only tunnel address the key gets
}

// allowGateway is ferry gateway: its allow list file.
type allowGateway struct{ f *gatewayctl.AllowFile }

func (g allowGateway) Allow(ctx context.Context, keys ...Key) error {
	entries := make([]gatewayctl.Entry, 0, len(keys))
	for _, k := range keys {
		exp := k.Expires
		entries = append(entries, gatewayctl.Entry{Pin: k.Pin, Lease: k.Lease, Expires: &exp, VirtualIP: k.VIP})
	}
	return g.f.Add(ctx, entries...)
}

func (g allowGateway) Revoke(ctx context.Context, lease string, _ []string) error {
	_, err := g.f.RemoveLease(ctx, lease)
	return err
}

// swanGateway is strongSwan: one connection per lease and server, loaded
// through VICI. The lender reports each key's pin, not the key, so the
// connection binds the server by the lender CA and the exact subject the
// lender certified for that lease and server.
type swanGateway struct {
	socket  string
	pool    string
	localTS []string
	ca      *x509.Certificate
	log     *slog.Logger
}

func newSwanGateway(cfg Config, log *slog.Logger) (*swanGateway, error) {
	data, err := os.ReadFile(cfg.LenderCA)
	if err != nil {
		return nil, fmt.Errorf("lender_ca: %w", err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("lender_ca %s: no PEM CERTIFICATE", cfg.LenderCA)
	}
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("lender_ca %s: %w", cfg.LenderCA, err)
	}
	return &swanGateway{socket: cfg.VICISocket, pool: cfg.SwanPool, localTS: cfg.SwanLocalTS, ca: ca, log: log}, nil
}

// session dials charon per operation, so a restarted charon is reached
// again without restarting the borrower.
func (g *swanGateway) session(ctx context.Context, f func(*gatewayctl.Swan) error) error {
	s, err := gatewayctl.DialSwan(ctx, g.socket, g.log)
	if err != nil {
		return fmt.Errorf("strongswan: %w", err)
	}
	defer s.Close()
	return f(s)
}

// LoadPool gives charon the pool lent servers' virtual IPs come from.
func (g *swanGateway) LoadPool(ctx context.Context, addrs netip.Prefix) error {
	return g.session(ctx, func(s *gatewayctl.Swan) error { return s.LoadPool(ctx, g.pool, addrs) })
}

func (g *swanGateway) Allow(ctx context.Context, keys ...Key) error {
	return g.session(ctx, func(s *gatewayctl.Swan) error {
		for _, k := range keys {
			id, err := gatewayctl.LeaseServerID(k.Lease, k.Server)
			if err != nil {
				return err
			}
			c := gatewayctl.Conn{Lease: k.Lease, Server: k.Server, CACert: g.ca, RemoteID: id, Pool: g.pool, LocalTS: g.localTS, VIP: k.VIP}
			if err := s.Load(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
}

func (g *swanGateway) Revoke(ctx context.Context, lease string, servers []string) error {
	return g.session(ctx, func(s *gatewayctl.Swan) error {
		for _, srv := range servers {
			if err := s.Unload(ctx, lease, srv); err != nil {
				return err
			}
		}
		return nil
	})
}

// Peers lists the virtual IPs charon gave, by connection name.
func (g *swanGateway) Peers(ctx context.Context) ([]Peer, error) {
	var out []Peer
	err := g.session(ctx, func(s *gatewayctl.Swan) error {
		sas, err := s.SAs(ctx)
		for _, sa := range sas {
			if sa.State != "ESTABLISHED" {
				continue
			}
			for _, v := range sa.RemoteVIPs {
				out = append(out, Peer{VIP: v, Conn: sa.Name})
			}
		}
		return err
	})
	return out, err
}

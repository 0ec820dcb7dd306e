package borrower

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
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
	// CertPEM is the one-time certificate the lender reports for the key;
	// strongSwan pins the key it holds.
	CertPEM string
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
// through VICI, that lets in exactly the one-time key the lender
// certified for that lease and server (remote.pubkeys, as ferry gateway
// pins its SPKI hash), with the certificate's exact subject and the
// lender CA, and hands it its one tunnel address.
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
			cert, err := g.pinnedCert(k)
			if err != nil {
				return err
			}
			c := gatewayctl.Conn{Lease: k.Lease, Server: k.Server, CACert: g.ca, PubKey: cert.PublicKey,
				RemoteID: gatewayctl.DNID(cert.RawSubject), Pool: g.pool, LocalTS: g.localTS, VIP: k.VIP}
			if err := s.Load(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
}

// pinnedCert reads the certificate the lender reported for k and checks
// it before its key is pinned: signed by the lender CA, for the key whose
// pin the lender reported, naming this lease and server. Without one the
// key is not let in: a conn naming only the subject would admit any key
// the lender CA certified under it.
func (g *swanGateway) pinnedCert(k Key) (*x509.Certificate, error) {
	blk, _ := pem.Decode([]byte(k.CertPEM))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("lease %s server %s: the lender reported no certificate, so strongSwan cannot pin its key", k.Lease, k.Server)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("lease %s server %s: certificate: %w", k.Lease, k.Server, err)
	}
	if err := cert.CheckSignatureFrom(g.ca); err != nil {
		return nil, fmt.Errorf("lease %s server %s: certificate not signed by lender_ca: %w", k.Lease, k.Server, err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	if pin := hex.EncodeToString(sum[:]); pin != k.Pin {
		return nil, fmt.Errorf("lease %s server %s: certificate key %s, but the lender reported pin %s", k.Lease, k.Server, pin, k.Pin)
	}
	if want := k.Lease + "/" + k.Server; cert.Subject.CommonName != want {
		return nil, fmt.Errorf("lease %s server %s: certificate names %q", k.Lease, k.Server, cert.Subject.CommonName)
	}
	return cert, nil
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
				p := Peer{VIP: v, Conn: sa.Name}
				if sa.Established > 0 {
					p.Since = time.Now().Add(-sa.Established).Truncate(time.Second).UTC()
				}
				out = append(out, p)
			}
		}
		return err
	})
	return out, err
}

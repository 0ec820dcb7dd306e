package gatewayctl

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/strongswan/govici/vici"
)

// MaxSAs bounds how many IKE SAs SAs reads from charon.
const MaxSAs = 65536

// SA is what charon reports of one IKE SA: the connection it belongs to
// (Name, "ferry-LEASE-SERVER" for ours), its state, the peer's identity and
// the virtual IPs the peer holds.
type SA struct {
	Name       string
	State      string // "ESTABLISHED", "CONNECTING", ...
	RemoteID   string
	RemoteVIPs []netip.Addr
	// Established is how long ago the IKE SA was established (charon's
	// "established" seconds); zero when charon does not say.
	Established time.Duration
}

// LoadPool loads (or replaces) the address pool name with addrs (a CIDR
// prefix), from which charon hands lent servers their virtual IPs.
func (s *Swan) LoadPool(ctx context.Context, name string, addrs netip.Prefix) error {
	if err := checkValue(name); err != nil || name == "" {
		return fmt.Errorf("pool name %.80q: %v", name, err)
	}
	sub := vici.NewMessage()
	if err := sub.Set("addrs", addrs.String()); err != nil {
		return err
	}
	in := vici.NewMessage()
	if err := in.Set(name, sub); err != nil {
		return err
	}
	if err := s.call(ctx, "load-pool", in); err != nil {
		return fmt.Errorf("load-pool %s %s: %w", name, addrs, err)
	}
	return nil
}

// SAs lists charon's IKE SAs (VICI list-sas).
func (s *Swan) SAs(ctx context.Context) ([]SA, error) {
	var out []SA
	for m, err := range s.sess.CallStreaming(ctx, "list-sas", "list-sa", nil) {
		if err != nil {
			return nil, fmt.Errorf("list-sas: %w", err)
		}
		sas, err := parseListSA(m)
		if err != nil {
			return nil, err
		}
		if out = append(out, sas...); len(out) > MaxSAs {
			return nil, fmt.Errorf("list-sas: over %d IKE SAs", MaxSAs)
		}
	}
	return out, nil
}

// parseListSA reads one list-sa event: IKE SA name -> section. Addresses
// charon reports are checked; a section of another shape is an error
// naming the SA and the field.
func parseListSA(m *vici.Message) ([]SA, error) {
	var out []SA
	for _, name := range m.Keys() {
		sec, ok := m.Get(name).(*vici.Message)
		if !ok {
			return nil, fmt.Errorf("list-sas: IKE SA %.80q: not a section", name)
		}
		sa := SA{Name: name}
		sa.State, _ = sec.Get("state").(string)
		sa.RemoteID, _ = sec.Get("remote-id").(string)
		if est, ok := sec.Get("established").(string); ok {
			n, err := strconv.ParseUint(est, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("list-sas: IKE SA %.80q: established %.40q: %w", name, est, err)
			}
			sa.Established = time.Duration(n) * time.Second
		}
		vips, _ := sec.Get("remote-vips").([]string)
		for _, v := range vips {
			a, err := netip.ParseAddr(v)
			if err != nil {
				return nil, fmt.Errorf("list-sas: IKE SA %.80q: remote-vips %.80q: %w", name, v, err)
			}
			sa.RemoteVIPs = append(sa.RemoteVIPs, a)
		}
		out = append(out, sa)
	}
	return out, nil
}

// LoadCRL gives charon a CRL (DER) of the lender CA: its revocation
// checks then refuse every certificate the CRL lists, whatever conn would
// let the key in. Loading a newer CRL of the same CA replaces the older.
func (s *Swan) LoadCRL(ctx context.Context, der []byte) error {
	in := vici.NewMessage()
	for k, v := range map[string]string{"type": "x509crl", "flag": "none", "data": string(der)} {
		if err := in.Set(k, v); err != nil {
			return err
		}
	}
	if err := s.call(ctx, "load-cert", in); err != nil {
		return fmt.Errorf("load-cert x509crl: %w", err)
	}
	return nil
}

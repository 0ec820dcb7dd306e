package lender

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"ferry/api"
	"ferry/netboot"
	"ferry/store"
)

// dhcpKeyPrefix places the DHCP leases in the Members table: member keys
// start with a lease ID ("L..."), so the prefix never meets them, and the
// store keeps its table list. A DHCP lease lives as long as image B may
// use its address: until it expires or the server is returned.
const dhcpKeyPrefix = "dhcp/"

func dhcpKey(mac string) string { return dhcpKeyPrefix + mac }

// dhcpLeaseRec is a stored DHCP lease, keyed by dhcpKey(MAC).
type dhcpLeaseRec struct {
	MAC     string    `json:"mac"`
	Addr    string    `json:"addr"`
	Expires time.Time `json:"expires"`
}

// dhcpLeases keeps netboot's lease table in the lender's store, one
// transaction per change.
type dhcpLeases struct {
	st  store.Store
	log *slog.Logger
}

// Load returns the stored leases; a record that does not parse is logged
// and skipped, so one bad record does not stop netboot.
func (d dhcpLeases) Load(ctx context.Context) ([]netboot.Lease, error) {
	var out []netboot.Lease
	err := d.st.View(ctx, func(tx store.Tx) error {
		return tx.Each(store.Members, dhcpKeyPrefix, func(key string, dec func(any) error) error {
			var rec dhcpLeaseRec
			l, err := dhcpLeaseOf(key, dec(&rec), rec)
			if err != nil {
				d.log.Warn("netboot: stored dhcp lease skipped", "key", key, "err", err)
				return nil
			}
			out = append(out, l)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load dhcp leases: %w", err)
	}
	return out, nil
}

// dhcpLeaseOf checks a decoded record against its key.
func dhcpLeaseOf(key string, decErr error, rec dhcpLeaseRec) (netboot.Lease, error) {
	if decErr != nil {
		return netboot.Lease{}, decErr
	}
	mac, err := net.ParseMAC(rec.MAC)
	if err != nil || len(mac) != 6 || dhcpKey(mac.String()) != key {
		return netboot.Lease{}, fmt.Errorf("dhcp lease %q: field mac %q: want the Ethernet MAC of the key", key, rec.MAC)
	}
	addr, err := netip.ParseAddr(rec.Addr)
	if err != nil || !addr.Is4() {
		return netboot.Lease{}, fmt.Errorf("dhcp lease %q: field addr %q: want an IPv4 address", key, rec.Addr)
	}
	return netboot.Lease{MAC: mac, Addr: addr, Expires: rec.Expires}, nil
}

// Put stores l.
func (d dhcpLeases) Put(ctx context.Context, l netboot.Lease) error {
	rec := dhcpLeaseRec{MAC: l.MAC.String(), Addr: l.Addr.String(), Expires: l.Expires.UTC()}
	return d.st.Update(ctx, func(tx store.Tx) error { return tx.Put(store.Members, dhcpKey(rec.MAC), rec) })
}

// Delete ends mac's lease.
func (d dhcpLeases) Delete(ctx context.Context, mac net.HardwareAddr) error {
	return d.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(store.Members, dhcpKey(mac.String())) })
}

// endDHCPLease ends a returned server's DHCP lease inside the return's
// transaction: its address goes back to the pool with the server.
func endDHCPLease(tx store.Tx, mac string) error {
	norm, err := api.NormalizeMAC(mac)
	if err != nil {
		return fmt.Errorf("end dhcp lease of %q: %w", mac, err)
	}
	return tx.Delete(store.Members, dhcpKey(norm))
}

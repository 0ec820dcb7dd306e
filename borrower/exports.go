package borrower

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"

	"ferry/store"
)

// Export is one lent server's NFS root as the NFS server serves it: the
// directory rootprep made (Path), the path the server mounts (Pseudo),
// and the one client allowed, the server's tunnel address.
type Export struct {
	ID     int // ganesha's Export_Id: fixed for the export's life (file handles carry it)
	Name   string
	Path   string
	Pseudo string
	Client netip.Addr
}

// Exports is the NFS server the borrower drives (config nfs_exports).
type Exports interface {
	// Set makes ferry's exports exactly want: adds the missing ones and
	// removes every other export of ferry's (of a returned lease, or
	// left by a crash). It is idempotent; on error the server keeps
	// either its previous exports or some of want, never another
	// client's root.
	Set(ctx context.Context, want []Export) error
}

// openExports returns the driver cfg names; nil for "none". Close
// releases what it holds.
func openExports(cfg Config) (Exports, error) {
	switch cfg.NFSExports {
	case "ganesha":
		// The file is the whole of this borrower's exports, rewritten
		// from its own store: a second borrower (another lender's leases)
		// writing the same file would remove the first one's exports.
		lock, err := ownFile(cfg.GaneshaExportsFile + ".lock")
		if err != nil {
			return nil, fmt.Errorf("ganesha_exports_file %s: %w", cfg.GaneshaExportsFile, err)
		}
		return &ganeshaExports{file: cfg.GaneshaExportsFile, pidFile: cfg.ganeshaPidFile(), lock: lock}, nil
	case "kernel":
		return &kernelExports{bin: "exportfs", etab: "/var/lib/nfs/etab", roots: RootsDir(cfg.Dir), options: cfg.kernelExportOptions()}, nil
	}
	return nil, nil
}

// wantExports is, from the store, one export per enrolled server of every
// lease whose servers are not cut off yet, once its root is whole (a
// root being copied has a hidden temporary name until then).
func (m *Manager) wantExports(ctx context.Context) ([]Export, error) {
	ls, err := m.Leases(ctx)
	if err != nil {
		return nil, err
	}
	pool := netip.MustParsePrefix(m.cfg.TunnelPool).Masked()
	var out []Export
	for _, l := range ls {
		if l.Cut || l.State != StateActive && l.State != StateReturning {
			continue
		}
		for i, s := range l.Lender.Servers {
			if s.SPKIPin == "" || i >= len(l.Roots) || i >= len(l.Addrs) || !m.roots.Ready(l.Roots[i]) {
				continue // not enrolled, or its root not whole yet
			}
			if !pool.Contains(l.Addrs[i]) {
				// tunnel_pool changed under a live lease: its export id
				// would collide; the server keeps no export until it is
				// returned and leased again.
				m.log.Error("tunnel address outside tunnel_pool: no export", "lease", l.ID, "root", l.Roots[i], "address", l.Addrs[i], "pool", pool)
				continue
			}
			out = append(out, Export{ID: m.cfg.exportID(pool, l.Addrs[i]), Name: l.Roots[i],
				Path:   filepath.Join(RootsDir(m.cfg.Dir), l.Roots[i]),
				Pseudo: m.cfg.NFSExport + "/" + l.Roots[i], Client: l.Addrs[i]})
		}
	}
	return out, nil
}

// syncExports makes the NFS server's ferry exports what the store says.
func (m *Manager) syncExports(ctx context.Context) error {
	if m.exports == nil {
		return nil
	}
	m.exportsMu.Lock()
	defer m.exportsMu.Unlock()
	want, err := m.wantExports(ctx)
	if err != nil {
		return err
	}
	if err := m.exports.Set(ctx, want); err != nil {
		return fmt.Errorf("nfs exports (%s): %w", m.cfg.NFSExports, err)
	}
	return nil
}

// assignAddrs gives each of l's servers a tunnel address of tunnel_pool
// that no other unfinished lease holds, inside tx, so two leases never
// get the same one. The gateway hands exactly that address to the
// server's key, and its export allows only that address.
func assignAddrs(tx store.Tx, cfg Config, l *Lease) error {
	if len(l.Addrs) >= l.Count {
		return nil
	}
	used := map[netip.Addr]bool{}
	err := tx.Each(store.Leases, "", func(_ string, dec func(any) error) error {
		var o Lease
		if err := dec(&o); err != nil {
			return err
		}
		if o.ID != l.ID && o.State != StateReturned && o.State != StateFailed {
			for _, a := range o.Addrs {
				used[a] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, a := range l.Addrs {
		used[a] = true
	}
	pool := netip.MustParsePrefix(cfg.TunnelPool).Masked()
	for a := pool.Addr().Next(); len(l.Addrs) < l.Count; a = a.Next() {
		if !pool.Contains(a) || !pool.Contains(a.Next()) { // the broadcast address is not handed out
			return fmt.Errorf("tunnel_pool %s: no free address for %d servers (%d in use)", pool, l.Count, len(used))
		}
		if !used[a] {
			l.Addrs = append(l.Addrs, a)
			used[a] = true
		}
	}
	return nil
}

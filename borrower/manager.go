package borrower

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	"ferry/api"
	"ferry/catalog"
	"ferry/store"
)

// Images is what the manager needs of the catalogue.
type Images interface {
	Get(ctx context.Context, name string) (catalog.Image, error)
}

// Roots is what the manager needs of rootprep.
type Roots interface {
	// Prepare copies template into root name, telling progress the
	// bytes done of the template's total now and then; cancelled or
	// failed, it leaves no partial copy. A root already whole is kept.
	Prepare(ctx context.Context, template, name string, progress func(done, total int64)) (string, error)
	// Ready reports whether root name is there, whole.
	Ready(name string) bool
	Retire(ctx context.Context, name string) error
}

// Gateway is what the manager needs of the gateway (through gatewayctl):
// let enrolled keys in, and shut a lease's servers out.
type Gateway interface {
	Allow(ctx context.Context, keys ...Key) error
	Revoke(ctx context.Context, lease string, servers []string) error
}

// Manager is the borrower's logic over its store.
type Manager struct {
	keys   *liveKeys // set by Open: the m2m and image key pairs a reload renews
	cfg    Config
	st     store.Store // fetch: every write of a lease goes through it
	fetch  *leaseIndexer
	images Images
	roots  Roots
	gw     Gateway // nil: no gateway configured
	// exports is the NFS server (nil: nfs_exports none); exportsMu makes
	// one Set at a time, each from a fresh read of the store.
	exports   Exports
	exportsMu sync.Mutex
	vips      *vipCache // nil: image B is refused to everyone
	// tunnels and keeperCert serve the shutdown at return (shutdown.go);
	// either nil: servers are not asked, the lender powers them off.
	tunnels    Tunnels
	keeperCert *tls.Certificate
	lender     *api.Client
	copies     *rootCopies // the roots being copied (rootcopy.go)
	events     events
	// watches are the booting leases whose polls the lender holds
	// (watch.go); refreshMu applies one lender answer at a time.
	watches   leaseWatches
	refreshMu sync.Mutex
	syncNow   chan struct{} // asks Sync for a pass now (buffered: one pending is enough)
	caPEM     string
	log       *slog.Logger
}

// New makes a Manager. gw and tunnels may be nil: no gateway is told, and
// image B is refused to everyone.
func New(cfg Config, st store.Store, images Images, roots Roots, gw Gateway, tunnels Tunnels, lender *api.Client, log *slog.Logger) (*Manager, error) {
	ca, err := os.ReadFile(cfg.BorrowerCA)
	if err != nil {
		return nil, fmt.Errorf("borrower_ca: %w", err)
	}
	kc, err := keeperClientCert(cfg, ca)
	if err != nil {
		return nil, err
	}
	fetch := &leaseIndexer{Store: st}
	m := &Manager{cfg: cfg, st: fetch, fetch: fetch, images: images, roots: roots, gw: gw, lender: lender, caPEM: string(ca), log: log,
		tunnels: tunnels, keeperCert: kc, copies: newRootCopies(cfg.RootCopies),
		watches: leaseWatches{held: map[string]bool{}}, syncNow: make(chan struct{}, 1)}
	if tunnels != nil {
		m.vips = newVIPCache(tunnels)
	}
	return m, nil
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return "B" + hex.EncodeToString(b[:])
}

// Close stops the root copies in flight (each removes its partial copy;
// Resume starts them again).
func (m *Manager) Close() { m.copies.Close() }

// RequestLease records the request (once per idempotency key) and drives
// it: the lender, then the roots while the servers boot. A retry returns
// the lease the first made.
func (m *Manager) RequestLease(ctx context.Context, r Request) (Lease, error) {
	if r.Template == "" {
		r.Template = m.cfg.DefaultTemplate
	}
	if r.Template == "" {
		return Lease{}, &api.FieldError{Field: "root", Reason: "no template given and no default_template configured"}
	}
	if r.Count < 1 || r.Count > api.MaxServers {
		return Lease{}, &api.FieldError{Field: "count", Reason: fmt.Sprintf("%d is not between 1 and %d", r.Count, api.MaxServers)}
	}
	if _, err := m.images.Get(ctx, r.Image); err != nil {
		return Lease{}, &api.FieldError{Field: "image", Reason: err.Error()}
	}
	if r.DurationSeconds != 0 && (r.DurationSeconds < 60 || r.DurationSeconds > api.MaxDuration) {
		return Lease{}, &api.FieldError{Field: "duration", Reason: fmt.Sprintf("%s is not between 1m and 90 days", time.Duration(r.DurationSeconds)*time.Second)}
	}
	if r.Key == "" {
		r.Key = newID() + newID()
	}
	var l Lease
	err := m.st.Update(ctx, func(tx store.Tx) error {
		var id string
		if err := tx.Get(store.Idem, r.Key, &id); err == nil {
			return tx.Get(store.Leases, id, &l)
		}
		l = Lease{ID: newID(), Key: r.Key, State: StateRequesting, Count: r.Count, Image: r.Image,
			Template: r.Template, Created: time.Now().UTC(), Pool: r.Pool, DurationSeconds: r.DurationSeconds}
		if err := assignAddrs(tx, m.cfg, &l); err != nil {
			return &api.FieldError{Field: "count", Reason: err.Error()}
		}
		if err := tx.Put(store.Idem, r.Key, l.ID); err != nil {
			return err
		}
		return tx.Put(store.Leases, l.ID, l)
	})
	if err == nil && l.State == StateFailed {
		// A retry of a refused request: the refusal again, not a lease.
		return l, &api.FieldError{Field: "idempotency_key", Reason: fmt.Sprintf("the request with this key was refused (lease %s failed): %s", l.ID, l.Error)}
	}
	if err != nil || l.State != StateRequesting {
		return l, err
	}
	return m.drive(ctx, l)
}

// drive asks the lender, recording each result, and once it has made the
// lease starts copying the roots: a refused request copies nothing, and
// the copies run while the servers power on and boot image A, which
// waits (wait-root) only if its root is not ready by then.
func (m *Manager) drive(ctx context.Context, l Lease) (Lease, error) {
	err := m.st.Update(ctx, func(tx store.Tx) error { // a lease recorded before tunnel addresses existed
		if err := assignAddrs(tx, m.cfg, &l); err != nil {
			return &api.FieldError{Field: "count", Reason: err.Error()}
		}
		return tx.Put(store.Leases, l.ID, l)
	})
	var req api.LeaseRequest
	if err == nil {
		req, err = m.lenderRequest(ctx, &l)
	}
	if err == nil {
		var got api.Lease
		if err = m.lender.Call(ctx, "POST", api.PathLeases, req, &got); err == nil {
			l.State, l.Lender, l.Error = StateActive, got, ""
			m.log.Info("lease active; copying its roots", "lease", l.ID, "lender_lease", got.ID, "servers", len(got.Servers))
			if err := m.put(ctx, l); err != nil {
				return l, err
			}
			m.startRoots(l)
			select { // Sync watches it from now, not from its next tick
			case m.syncNow <- struct{}{}:
			default:
			}
			return l, nil
		}
	}
	var fe *api.FieldError
	if !errors.As(err, &fe) {
		err = &RetryingError{Lease: l.ID, Err: err}
		l.Error = err.Error()
		if perr := m.put(ctx, l); perr != nil {
			m.log.Warn("lease: last error not stored", "lease", l.ID, "err", perr)
		}
		return l, err
	}
	m.log.Warn("lease refused", "lease", l.ID, "err", err)
	// Nothing was copied; a lease recorded by an older borrower, which
	// copied first, may have roots to remove.
	for _, name := range l.Roots {
		if rerr := m.roots.Retire(ctx, name); rerr != nil {
			m.log.Error("remove root of refused lease", "root", name, "err", rerr)
		}
	}
	l.State, l.Error = StateFailed, fe.Error()
	if perr := m.put(ctx, l); perr != nil {
		return l, perr
	}
	return l, err
}

// RetryingError is a lease request that was recorded but not yet made at
// the lender (it did not answer, or answered with an error of its own):
// the manager retries it with the same idempotency key.
type RetryingError struct {
	Lease string
	Err   error
}

func (e *RetryingError) Error() string {
	return fmt.Sprintf("lease %s: %v (will retry with the same idempotency key)", e.Lease, e.Err)
}

func (e *RetryingError) Unwrap() error { return e.Err }

// lenderRequest builds the lender's request. Each root's name is fixed
// (LEASE-i), so the request carries its NFS path before the root exists:
// it is copied once the lender said yes, and exported only once whole.
func (m *Manager) lenderRequest(ctx context.Context, l *Lease) (api.LeaseRequest, error) {
	img, err := m.images.Get(ctx, l.Image)
	if err != nil {
		return api.LeaseRequest{}, &api.FieldError{Field: "image", Reason: err.Error()}
	}
	base := m.cfg.ImageURL + "/" + url.PathEscape(img.Name) + "/"
	req := api.LeaseRequest{IdempotencyKey: l.Key, Count: l.Count, Gateway: m.cfg.Gateway, BorrowerCA: m.caPEM,
		Image: api.Image{Kernel: api.Artifact{URL: base + "vmlinuz", SHA256: img.Kernel.SHA256},
			Initrd: api.Artifact{URL: base + "initrd.img", SHA256: img.Initrd.SHA256}, Cmdline: img.Cmdline},
		DurationSeconds: int64(m.cfg.leaseDuration() / time.Second), Tunnel: m.cfg.Tunnel, Pool: l.Pool}
	// The servers guard the pool fail closed (the other servers' virtual
	// IPs); the configuration check has parsed it.
	if pool, err := api.ParseTunnelPool(m.cfg.TunnelPool); err == nil {
		req.TunnelPool = pool.String()
	}
	if l.DurationSeconds > 0 {
		req.DurationSeconds = l.DurationSeconds
	}
	if img.Modules != nil {
		req.Image.Modules = &api.Artifact{URL: base + "modules.cpio", SHA256: img.Modules.SHA256}
	}
	if len(l.Roots) < l.Count {
		// Refused before the lender is asked: no lease for roots that
		// cannot be made.
		if fi, err := os.Stat(l.Template); err != nil {
			return req, &api.FieldError{Field: "root", Reason: fmt.Sprintf("template: %v", err)}
		} else if !fi.IsDir() {
			return req, &api.FieldError{Field: "root", Reason: fmt.Sprintf("template %s is not a directory", l.Template)}
		}
		for i := len(l.Roots); i < l.Count; i++ {
			l.Roots = append(l.Roots, fmt.Sprintf("%s-%d", l.ID, i))
		}
		if err := m.put(ctx, *l); err != nil {
			return req, err
		}
	}
	for _, name := range l.Roots {
		req.Roots = append(req.Roots, api.NFSRoot{Server: m.cfg.NFSServer, Path: m.cfg.NFSExport + "/" + name,
			NFSVersion: "4.1", State: "tmpfs"})
	}
	return req, nil
}

func (m *Manager) put(ctx context.Context, l Lease) error {
	return m.st.Update(ctx, func(tx store.Tx) error { return tx.Put(store.Leases, l.ID, l) })
}

// Lease returns the local record of a lease.
func (m *Manager) Lease(ctx context.Context, id string) (Lease, error) {
	var l Lease
	err := m.st.View(ctx, func(tx store.Tx) error { return tx.Get(store.Leases, id, &l) })
	if errors.Is(err, store.ErrNotFound) {
		return l, &api.FieldError{Field: "lease", Reason: fmt.Sprintf("no lease %q", id)}
	}
	return l, err
}

// Leases lists local lease records.
func (m *Manager) Leases(ctx context.Context) ([]Lease, error) {
	return readLeases(ctx, m.st)
}

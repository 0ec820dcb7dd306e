package netboot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// offerHold is how long an offered address stays reserved for its MAC
// before the client's REQUEST makes it a lease.
const offerHold = time.Minute

var errPoolFull = errors.New("address pool exhausted")

type lease struct {
	addr    netip.Addr
	expires time.Time
	stored  bool // an acknowledged lease, kept in Leases; false for an offer
}

// leaseTable hands out Pool addresses. An address held by an unexpired
// lease (or offer) is never given to another MAC; state is bounded by the
// pool size and max. Acknowledged leases are written through to store and
// read back from it before the first packet is answered, so a restart
// forgets only offers.
type leaseTable struct {
	mu     sync.Mutex
	pool   Pool
	max    int
	store  Leases
	log    *slog.Logger
	loaded bool
	byMAC  map[string]*lease
	byAddr map[netip.Addr]string
}

func newLeaseTable(p Pool, max int, st Leases, log *slog.Logger) *leaseTable {
	return &leaseTable{pool: p, max: max, store: st, log: log, byMAC: map[string]*lease{}, byAddr: map[netip.Addr]string{}}
}

// load reads the stored leases into the table (once; again after a failure).
func (t *leaseTable) load(ctx context.Context, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ensureLoaded(ctx, now)
}

func (t *leaseTable) ensureLoaded(ctx context.Context, now time.Time) error {
	if t.loaded {
		return nil
	}
	if err := t.reload(ctx, now); err != nil {
		return err
	}
	t.loaded = true
	t.log.Info("netboot: dhcp leases loaded", "held", len(t.byMAC))
	return nil
}

// reload rebuilds the table from the store, keeping this process's live
// offers whose MAC and address the store does not hold.
func (t *leaseTable) reload(ctx context.Context, now time.Time) error {
	ls, err := t.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("netboot: load dhcp leases: %w", err)
	}
	byMAC, byAddr := map[string]*lease{}, map[netip.Addr]string{}
	for _, l := range ls {
		if t.admitStored(ctx, l, now, byMAC) {
			k := l.MAC.String()
			if old, ok := byMAC[k]; ok {
				delete(byAddr, old.addr)
			}
			byMAC[k] = &lease{addr: l.Addr, expires: l.Expires, stored: true}
			byAddr[l.Addr] = k
		}
	}
	for k, l := range t.byMAC {
		_, macHeld := byMAC[k]
		_, addrHeld := byAddr[l.addr]
		if !l.stored && now.Before(l.expires) && !macHeld && !addrHeld && len(byMAC) < t.max {
			byMAC[k], byAddr[l.addr] = l, k
		}
	}
	t.byMAC, t.byAddr = byMAC, byAddr
	return nil
}

// admitStored checks one stored lease: a sane MAC, an address of the
// pool, unexpired, within max, and not beaten by a longer lease of the
// same address or MAC already admitted. Expired leases are deleted.
func (t *leaseTable) admitStored(ctx context.Context, l Lease, now time.Time, byMAC map[string]*lease) bool {
	switch {
	case len(l.MAC) != 6:
		t.log.Warn("netboot: stored dhcp lease skipped: MAC is not Ethernet", "mac", l.MAC.String(), "addr", l.Addr.String())
		return false
	case !t.pool.contains(l.Addr):
		t.log.Warn("netboot: stored dhcp lease skipped: address outside the pool", "mac", l.MAC.String(), "addr", l.Addr.String(),
			"pool", t.pool.First.String()+"-"+t.pool.Last.String())
		return false
	case !now.Before(l.Expires):
		if err := t.store.Delete(ctx, l.MAC); err != nil {
			t.log.Warn("netboot: expired dhcp lease not deleted", "mac", l.MAC.String(), "err", err)
		}
		return false
	case len(byMAC) >= t.max:
		t.log.Warn("netboot: stored dhcp lease skipped: more leases than max", "mac", l.MAC.String(), "max", t.max)
		return false
	}
	for k, held := range byMAC {
		if held.addr == l.Addr && k != l.MAC.String() {
			t.log.Warn("netboot: stored dhcp leases share an address; keeping the first", "addr", l.Addr.String(), "kept", k, "skipped", l.MAC.String())
			return false
		}
	}
	return true
}

// offer returns mac's address, reserving one if it has none and heldOnly
// is false.
func (t *leaseTable) offer(ctx context.Context, mac net.HardwareAddr, now time.Time, heldOnly bool) (netip.Addr, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.ensureLoaded(ctx, now); err != nil {
		return netip.Addr{}, err
	}
	k := mac.String()
	if l, ok := t.byMAC[k]; ok {
		if l.expires.Before(now.Add(offerHold)) {
			l.expires = now.Add(offerHold)
		}
		return l.addr, nil
	}
	if heldOnly {
		return netip.Addr{}, fmt.Errorf("%s holds no address here and may only keep one", k)
	}
	a, err := t.free(ctx, now)
	if errors.Is(err, errPoolFull) {
		// The owner of the store may have ended leases (a returned
		// server): read it again before refusing.
		if err = t.reload(ctx, now); err == nil {
			a, err = t.free(ctx, now)
		}
	}
	if err != nil {
		return netip.Addr{}, err
	}
	t.byMAC[k] = &lease{addr: a, expires: now.Add(offerHold)}
	t.byAddr[a] = k
	return a, nil
}

// free finds an address no live lease holds, reclaiming expired ones.
func (t *leaseTable) free(ctx context.Context, now time.Time) (netip.Addr, error) {
	var reclaim netip.Addr
	for a := t.pool.First; a.IsValid() && !t.pool.Last.Less(a); a = a.Next() {
		mac, held := t.byAddr[a]
		if !held {
			if len(t.byMAC) >= t.max {
				break
			}
			return a, nil
		}
		if !reclaim.IsValid() && !now.Before(t.byMAC[mac].expires) {
			reclaim = a
		}
	}
	if !reclaim.IsValid() {
		return netip.Addr{}, errPoolFull
	}
	k := t.byAddr[reclaim]
	if t.byMAC[k].stored {
		mac, _ := net.ParseMAC(k)
		if err := t.store.Delete(ctx, mac); err != nil {
			return netip.Addr{}, fmt.Errorf("netboot: reclaim expired lease of %s on %v: %w", k, reclaim, err)
		}
	}
	delete(t.byMAC, k)
	delete(t.byAddr, reclaim)
	return reclaim, nil
}

// confirm turns mac's offer for addr into a lease, stored before it is
// acknowledged. known says whether mac holds any address here; ok whether
// it is addr.
func (t *leaseTable) confirm(ctx context.Context, mac net.HardwareAddr, addr netip.Addr, now time.Time) (known, ok bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.ensureLoaded(ctx, now); err != nil {
		return false, false, err
	}
	l, known := t.byMAC[mac.String()]
	if !known || l.addr != addr {
		return known, false, nil
	}
	exp := now.Add(t.pool.LeaseTime)
	if err := t.store.Put(ctx, Lease{MAC: mac, Addr: addr, Expires: exp}); err != nil {
		return true, false, fmt.Errorf("netboot: store lease of %s on %v: %w", mac, addr, err)
	}
	l.expires, l.stored = exp, true
	return true, true, nil
}

// release frees mac's lease (DHCPRELEASE).
func (t *leaseTable) release(ctx context.Context, mac net.HardwareAddr, addr netip.Addr, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.ensureLoaded(ctx, now); err != nil {
		return err
	}
	k := mac.String()
	l, ok := t.byMAC[k]
	if !ok || l.addr != addr {
		return nil
	}
	if l.stored {
		if err := t.store.Delete(ctx, mac); err != nil {
			return fmt.Errorf("netboot: delete released lease of %s on %v: %w", mac, addr, err)
		}
	}
	delete(t.byMAC, k)
	delete(t.byAddr, addr)
	return nil
}

func (p Pool) contains(a netip.Addr) bool {
	return a.Is4() && !a.Less(p.First) && !p.Last.Less(a)
}

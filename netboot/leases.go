package netboot

import (
	"errors"
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
}

// leaseTable hands out Pool addresses. An address held by an unexpired
// lease (or offer) is never given to another MAC; state is bounded by the
// pool size and max.
type leaseTable struct {
	mu     sync.Mutex
	pool   Pool
	max    int
	byMAC  map[string]*lease
	byAddr map[netip.Addr]string
}

func newLeaseTable(p Pool, max int) *leaseTable {
	return &leaseTable{pool: p, max: max, byMAC: map[string]*lease{}, byAddr: map[netip.Addr]string{}}
}

// offer returns mac's address, reserving one if it has none.
func (t *leaseTable) offer(mac net.HardwareAddr, now time.Time) (netip.Addr, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := mac.String()
	if l, ok := t.byMAC[k]; ok {
		if l.expires.Before(now.Add(offerHold)) {
			l.expires = now.Add(offerHold)
		}
		return l.addr, nil
	}
	a, err := t.free(now)
	if err != nil {
		return netip.Addr{}, err
	}
	t.byMAC[k] = &lease{addr: a, expires: now.Add(offerHold)}
	t.byAddr[a] = k
	return a, nil
}

// free finds an address no live lease holds, reclaiming expired ones.
func (t *leaseTable) free(now time.Time) (netip.Addr, error) {
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
	delete(t.byMAC, t.byAddr[reclaim])
	delete(t.byAddr, reclaim)
	return reclaim, nil
}

// confirm turns mac's offer for addr into a lease. known says whether mac
// holds any address here; ok whether it is addr.
func (t *leaseTable) confirm(mac net.HardwareAddr, addr netip.Addr, now time.Time) (known, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, known := t.byMAC[mac.String()]
	if !known || l.addr != addr {
		return known, false
	}
	l.expires = now.Add(t.pool.LeaseTime)
	return true, true
}

// release frees mac's lease (DHCPRELEASE).
func (t *leaseTable) release(mac net.HardwareAddr, addr netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := mac.String()
	if l, ok := t.byMAC[k]; ok && l.addr == addr {
		delete(t.byMAC, k)
		delete(t.byAddr, addr)
	}
}

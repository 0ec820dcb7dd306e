package netboot

import (
	"crypto/rand"
	"net"
	"sync"
	"time"
)

// boot is one script request's answer, kept until its URLs expire so the
// kernel and initrd fetches serve exactly what the script named.
type boot struct {
	mac     net.HardwareAddr
	spec    BootSpec
	expires time.Time
}

// bootTable holds at most max boots; when full, expired ones go first, then
// the oldest.
type bootTable struct {
	mu    sync.Mutex
	max   int
	m     map[[16]byte]*boot
	order [][16]byte // insertion order, for eviction
}

func newBootTable(max int) *bootTable {
	return &bootTable{max: max, m: make(map[[16]byte]*boot)}
}

func (t *bootTable) add(b *boot, now time.Time) [16]byte {
	var id [16]byte
	rand.Read(id[:])
	t.mu.Lock()
	defer t.mu.Unlock()
	t.evict(now)
	t.m[id] = b
	t.order = append(t.order, id)
	return id
}

// evict drops expired entries, then the oldest while the table is full.
// Every boot lives for the same URL lifetime, so insertion order is expiry
// order and eviction only looks at the front.
func (t *bootTable) evict(now time.Time) {
	for len(t.order) > 0 {
		b := t.m[t.order[0]]
		if len(t.order) < t.max && now.Before(b.expires) {
			return
		}
		delete(t.m, t.order[0])
		t.order = t.order[1:]
	}
}

func (t *bootTable) get(id [16]byte, now time.Time) (*boot, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.m[id]
	if !ok || !now.Before(b.expires) {
		return nil, false
	}
	return b, true
}

func (t *bootTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

package netboot

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Lease is an acknowledged DHCP lease: Addr belongs to MAC until Expires.
type Lease struct {
	MAC     net.HardwareAddr
	Addr    netip.Addr
	Expires time.Time
}

// Leases keeps the DHCP lease table across restarts (ModeDHCP). The
// server loads it before answering its first packet, puts a lease before
// acknowledging it and deletes it when the client releases it or another
// MAC reclaims the expired address. Whoever owns the store may delete a
// lease too (the lender does when a server comes back); the server reads
// the store again before it refuses a MAC for want of addresses.
// Implementations must be safe for concurrent use; what Load returns is
// validated (pool, expiry, duplicates) as untrusted input.
type Leases interface {
	Load(ctx context.Context) ([]Lease, error)
	Put(ctx context.Context, l Lease) error
	Delete(ctx context.Context, mac net.HardwareAddr) error
}

// MemLeases is a Leases in memory: the default, forgotten at exit.
type MemLeases struct {
	mu sync.Mutex
	m  map[string]Lease
}

// NewMemLeases returns an empty MemLeases.
func NewMemLeases() *MemLeases { return &MemLeases{m: map[string]Lease{}} }

// Load returns the leases in MAC order.
func (s *MemLeases) Load(context.Context) ([]Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Lease, 0, len(s.m))
	for _, l := range s.m {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Lease) int { return slices.Compare(a.MAC, b.MAC) })
	return out, nil
}

// Put stores l under its MAC.
func (s *MemLeases) Put(_ context.Context, l Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l.MAC = slices.Clone(l.MAC)
	s.m[l.MAC.String()] = l
	return nil
}

// Delete forgets mac's lease.
func (s *MemLeases) Delete(_ context.Context, mac net.HardwareAddr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, mac.String())
	return nil
}

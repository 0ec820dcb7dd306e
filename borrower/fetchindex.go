package borrower

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ferry/api"
	"ferry/gatewayctl"
	"ferry/store"
)

// The image gate (mayFetch) used to decode every lease of the store,
// certificates included, for every request of image B: 23 ms of CPU a
// request at 1,000 servers, most of the borrower's CPU while a fleet
// booted. It now reads fetchIndex, an immutable snapshot of who may fetch
// derived from the store's leases, replaced whole after each committed
// change of a lease (leaseIndexer), so that it never grants what the
// store as committed would refuse.

// fetchEntry is one server a lease lets fetch image B: its key was
// allowed at the gateway (its pin is in the lease's Pins).
type fetchEntry struct {
	lease  string // local lease id; entries are ordered by (lease, server)
	server int    // index in the lease's servers
	image  string
	root   string     // "": none recorded (a lease of an older borrower)
	pin    string     // the key's pin (ferry gateway)
	conn   string     // its strongSwan connection's name
	addr   netip.Addr // invalid: any address (a lease recorded before tunnel addresses)
	// expires is the lease's end as the lender set it (zero: none): from
	// then on the entry grants nothing, whether or not a poll returned
	// the lease yet.
	expires time.Time
}

// fetchEntries is what lease l lets fetch: nothing unless it is active,
// else each server whose key was allowed, at its tunnel address.
func fetchEntries(l Lease) []fetchEntry {
	if l.State != StateActive {
		return nil
	}
	var out []fetchEntry
	for i, s := range l.Lender.Servers {
		if s.SPKIPin == "" || !slices.Contains(l.Pins, s.SPKIPin) {
			continue
		}
		e := fetchEntry{lease: l.ID, server: i, image: l.Image, pin: s.SPKIPin,
			conn: gatewayctl.Conn{Lease: l.Lender.ID, Server: s.ID}.Name(), expires: l.Lender.Expires}
		if i < len(l.Addrs) && l.Addrs[i].IsValid() {
			e.addr = l.Addrs[i] // the gateway gives the key this address alone
		}
		if i < len(l.Roots) {
			e.root = l.Roots[i]
		}
		out = append(out, e)
	}
	return out
}

// admits reports whether e lets peer in at now.
func (e fetchEntry) admits(peer Peer, now time.Time) bool {
	if !e.expires.IsZero() && !now.Before(e.expires) {
		return false
	}
	if e.addr.IsValid() && peer.VIP != e.addr {
		return false
	}
	return peer.Pin != "" && peer.Pin == e.pin || peer.Conn != "" && peer.Conn == e.conn
}

func (e fetchEntry) before(o fetchEntry) bool {
	return e.lease < o.lease || e.lease == o.lease && e.server < o.server
}

// fetchIndex is who may fetch image B, by tunnel address. It is never
// changed once built: a change of the leases makes a new one.
type fetchIndex struct {
	byLease map[string][]fetchEntry
	byAddr  map[netip.Addr][]fetchEntry
	anyAddr []fetchEntry // entries without a tunnel address
	// heads is every lease's state and end, what Sync and the root
	// copies ask, so they need not decode whole leases.
	heads map[string]leaseHead
}

// leaseHead is what Sync needs of a stored lease to poll the lender.
type leaseHead struct {
	ID, State, LenderID string
	Expires             time.Time // the lender's end
	// LenderTag is the api.ETag of the lender's answer as stored ("":
	// none; ask in full): the lender answers 304 while it is the same.
	LenderTag string
	// Booting: a server of the lease has no key yet; its enrollment is
	// awaited, and the gateway should learn its key at once (watch.go).
	Booting bool
}

func headOf(l Lease) leaseHead {
	h := leaseHead{ID: l.ID, State: l.State, LenderID: l.Lender.ID, Expires: l.Lender.Expires,
		Booting: l.State == StateActive && booting(l)}
	// A full answer each poll while the lease has work left that only a
	// refresh does: tunnel addresses to assign, or a key the gateway has
	// not taken yet (its Allow failed): a 304 would skip the retry.
	if l.State == StateActive && l.Lender.ID != "" && len(l.Addrs) >= l.Count && !keysPending(l) {
		h.LenderTag, _ = api.ETag(l.Lender)
	}
	return h
}

// booting reports whether a server of l has not enrolled yet.
func booting(l Lease) bool {
	if len(l.Lender.Servers) < l.Count {
		return true
	}
	for _, s := range l.Lender.Servers {
		if s.SPKIPin == "" {
			return true
		}
	}
	return false
}

// keysPending reports whether a server of l shows a key the gateway was
// not told about.
func keysPending(l Lease) bool {
	for _, s := range l.Lender.Servers {
		if s.SPKIPin != "" && !slices.Contains(l.Pins, s.SPKIPin) {
			return true
		}
	}
	return false
}

// expired is expired(l, now) for the lease h heads.
func (h leaseHead) expired(now time.Time) bool {
	return h.State == StateActive && !h.Expires.IsZero() && !now.Before(h.Expires)
}

func newFetchIndex(ls []Lease) *fetchIndex {
	x := &fetchIndex{byLease: map[string][]fetchEntry{}, heads: make(map[string]leaseHead, len(ls))}
	for _, l := range ls {
		x.heads[l.ID] = headOf(l)
		if es := fetchEntries(l); len(es) > 0 {
			x.byLease[l.ID] = es
		}
	}
	x.derive()
	return x
}

// with is x after the committed changes: each lease of changed replaced
// (a nil value: deleted).
func (x *fetchIndex) with(changed map[string]*Lease) *fetchIndex {
	n := &fetchIndex{byLease: make(map[string][]fetchEntry, len(x.byLease)+len(changed)),
		heads: make(map[string]leaseHead, len(x.heads)+len(changed))}
	for id, es := range x.byLease {
		if _, ok := changed[id]; !ok {
			n.byLease[id] = es
		}
	}
	for id, h := range x.heads {
		if _, ok := changed[id]; !ok {
			n.heads[id] = h
		}
	}
	for id, l := range changed {
		if l == nil {
			continue
		}
		n.heads[id] = headOf(*l)
		if es := fetchEntries(*l); len(es) > 0 {
			n.byLease[id] = es
		}
	}
	n.derive()
	return n
}

// active is the heads of the active leases, by id.
func (x *fetchIndex) active() []leaseHead {
	var out []leaseHead
	for _, h := range x.heads {
		if h.State == StateActive {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b leaseHead) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (x *fetchIndex) derive() {
	x.byAddr = map[netip.Addr][]fetchEntry{}
	for _, es := range x.byLease {
		for _, e := range es {
			if e.addr.IsValid() {
				x.byAddr[e.addr] = append(x.byAddr[e.addr], e)
			} else {
				x.anyAddr = append(x.anyAddr, e)
			}
		}
	}
}

// awaits reports whether ip is the address of a server whose key the
// gateway took, of an active lease before its end: a tunnel the gateway
// does not list yet may be that server's, just connected.
func (x *fetchIndex) awaits(ip netip.Addr, now time.Time) bool {
	for _, e := range x.byAddr[ip] {
		if e.expires.IsZero() || now.Before(e.expires) {
			return true
		}
	}
	return false
}

// decide is the gate's answer for peer asking for image: the first
// entry in (lease, server) order that admits peer decides, as the scan
// of the store in key order did. It names peer's root.
func (x *fetchIndex) decide(peer Peer, image string, now time.Time) (string, error) {
	var best *fetchEntry
	for _, es := range [][]fetchEntry{x.byAddr[peer.VIP], x.anyAddr} {
		for i := range es {
			if es[i].admits(peer, now) && (best == nil || es[i].before(*best)) {
				best = &es[i]
			}
		}
	}
	switch {
	case best == nil:
		return "", fmt.Errorf("%s is held by no server of an active lease", peer.VIP)
	case best.image != image:
		return "", fmt.Errorf("%s is a server of lease %s, whose image is %q, not %q", peer.VIP, best.lease, best.image, image)
	}
	return best.root, nil
}

// leaseIndexer is the manager's store: every committed change of the
// leases table replaces the fetch index, before Update returns and in
// the order of the commits (mu), so a request that starts after a write
// returned is decided by it, as when the gate read the store itself.
type leaseIndexer struct {
	store.Store
	mu  sync.Mutex
	idx atomic.Pointer[fetchIndex] // nil: built from the store at next use
	// commits counts the committed transactions that wrote leases.
	commits atomic.Uint64
}

// index is the current snapshot, built from the store when there is none.
func (s *leaseIndexer) index(ctx context.Context) (*fetchIndex, error) {
	if x := s.idx.Load(); x != nil {
		return x, nil
	}
	s.mu.Lock() // no commit between the read and the swap
	defer s.mu.Unlock()
	if x := s.idx.Load(); x != nil {
		return x, nil
	}
	ls, err := readLeases(ctx, s.Store)
	if err != nil {
		return nil, err
	}
	x := newFetchIndex(ls)
	s.idx.Store(x)
	return x, nil
}

func (s *leaseIndexer) Update(ctx context.Context, fn func(store.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rec *recordTx
	ran := false
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		rec = &recordTx{Tx: tx}
		err := fn(rec)
		ran = err == nil
		return err
	})
	switch {
	case rec == nil || !rec.touched():
		return err
	case err != nil && !ran:
		// fn failed: rolled back, nothing changed.
	case err != nil || rec.unknown:
		// A commit that failed may or may not be on disk, and a value
		// of a type the index cannot read: rebuilt from the store.
		s.idx.Store(nil)
	default:
		if x := s.idx.Load(); x != nil {
			s.idx.Store(x.with(rec.leases))
		}
	}
	if err == nil {
		s.commits.Add(1)
	}
	return err
}

// Batch is Update here: the index follows the commits one by one.
func (s *leaseIndexer) Batch(ctx context.Context, fn func(store.Tx) error) error {
	return s.Update(ctx, fn)
}

// recordTx notes the lease records a transaction writes.
type recordTx struct {
	store.Tx
	leases  map[string]*Lease // nil: deleted
	unknown bool              // written in a form the index cannot follow
}

func (r *recordTx) touched() bool { return len(r.leases) > 0 || r.unknown }

func (r *recordTx) note(key string, l *Lease) {
	if r.leases == nil {
		r.leases = map[string]*Lease{}
	}
	r.leases[key] = l
}

func (r *recordTx) Put(t store.Table, key string, v any) error {
	if err := r.Tx.Put(t, key, v); err != nil || t != store.Leases {
		return err
	}
	var l Lease
	switch v := v.(type) {
	case Lease:
		l = v
	case *Lease:
		l = *v
	default:
		r.unknown = true
		return nil
	}
	r.unknown = r.unknown || l.ID != key // entries are ordered by ID
	r.note(key, &l)
	return nil
}

func (r *recordTx) Delete(t store.Table, key string) error {
	if err := r.Tx.Delete(t, key); err != nil || t != store.Leases {
		return err
	}
	r.note(key, nil)
	return nil
}

func (r *recordTx) Append(t store.Table, v any) (uint64, error) {
	n, err := r.Tx.Append(t, v)
	if err == nil && t == store.Leases {
		r.unknown = true
	}
	return n, err
}

// readLeases decodes every lease of st.
func readLeases(ctx context.Context, st store.Store) ([]Lease, error) {
	var out []Lease
	err := st.View(ctx, func(tx store.Tx) error {
		return tx.Each(store.Leases, "", func(_ string, dec func(any) error) error {
			var l Lease
			if err := dec(&l); err != nil {
				return err
			}
			out = append(out, l)
			return nil
		})
	})
	return out, err
}

package ike

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"sync"

	"ferry/internal/atomicfile"
)

// ErrPoolExhausted is returned when every address of a pool is bound.
var ErrPoolExhausted = errors.New("address pool exhausted")

// Pool hands out virtual IPv4 addresses (INTERNAL_IP4_ADDRESS) from a
// prefix. An address is bound to a peer's key (its pin) for the whole
// lease, not for one IKE SA: the same key gets the same address after
// any reconnect, and the address is freed only by Release, which the
// daemon calls when the key leaves the allow list (Revoke). So an
// address is never handed to another lease's server while the first one
// may still use it, whatever happened to its SAs (a WAN outage longer
// than DPD, a gateway restart, a frozen guest).
//
// With Persist, the bindings are also written to a file and read back on
// start, so that a restarted gateway gives every key its address again.
type Pool struct {
	mu     sync.Mutex
	prefix netip.Prefix
	byAddr map[netip.Addr]string
	byPeer map[string]netip.Addr
	path   string // Persist's file; "" keeps the bindings in memory only
}

// NewPool makes a pool over prefix; the network and broadcast addresses
// are never handed out.
func NewPool(prefix netip.Prefix) (*Pool, error) {
	prefix = prefix.Masked()
	if !prefix.Addr().Is4() || prefix.Bits() > 30 {
		return nil, fmt.Errorf("ike: pool %s: want an IPv4 prefix of /30 or shorter", prefix)
	}
	return &Pool{prefix: prefix, byAddr: map[netip.Addr]string{}, byPeer: map[string]netip.Addr{}}, nil
}

// usable: a is in the pool's prefix and neither its network nor its
// broadcast address.
func (p *Pool) usable(a netip.Addr) bool {
	return p.prefix.Contains(a) && a != p.prefix.Addr() && p.prefix.Contains(a.Next())
}

// Prefix is the pool's range.
func (p *Pool) Prefix() netip.Prefix { return p.prefix }

// Acquire returns peer's address, binding a free one if it has none.
// The first address tried is derived from the pin, so that even without
// Persist a key usually gets the same address from a restarted gateway.
func (p *Pool) Acquire(peer string) (netip.Addr, error) { return p.AcquireExcept(peer, nil) }

// AcquireExcept is Acquire never binding one of reserved: the addresses
// the allow list fixes for other keys (AcquireAt), which a key without
// one must not take before them.
func (p *Pool) AcquireExcept(peer string, reserved map[netip.Addr]string) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byPeer[peer]; ok {
		return a, nil
	}
	size := uint32(1) << (32 - p.prefix.Bits())
	usable := size - 2
	sum := sha256.Sum256([]byte(peer))
	base := binary.BigEndian.Uint32(p.prefix.Addr().AsSlice())
	start := binary.BigEndian.Uint32(sum[:4]) % usable
	for i := range usable {
		a := netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, base+1+(start+i)%usable)))
		if _, taken := p.byAddr[a]; taken {
			continue
		}
		if holder, ok := reserved[a]; ok && holder != peer {
			continue
		}
		p.byAddr[a], p.byPeer[peer] = peer, a
		if err := p.save(); err != nil {
			delete(p.byAddr, a)
			delete(p.byPeer, peer)
			return netip.Addr{}, err
		}
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("ike: pool %s: %w (%d bound)", p.prefix, ErrPoolExhausted, len(p.byAddr))
}

// AcquireAt binds exactly a to peer: the address the allow list gives
// its key (authz.Entry.VirtualIP), to which the borrower restricted the
// server's NFS export. It fails, never handing out another address, when
// a is not a usable address of the pool or is bound to another peer; an
// address peer was bound to before is freed.
func (p *Pool) AcquireAt(peer string, a netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.usable(a) {
		return fmt.Errorf("ike: pool %s: the allow list's address %s is not one of its usable addresses", p.prefix, a)
	}
	if holder, taken := p.byAddr[a]; taken && holder != peer {
		return fmt.Errorf("ike: pool %s: the allow list's address %s is bound to another key", p.prefix, a)
	}
	old, had := p.byPeer[peer]
	if had && old == a {
		return nil
	}
	if had {
		delete(p.byAddr, old)
	}
	p.byAddr[a], p.byPeer[peer] = peer, a
	if err := p.save(); err != nil {
		delete(p.byAddr, a)
		delete(p.byPeer, peer)
		if had {
			p.byAddr[old], p.byPeer[peer] = peer, old
		}
		return err
	}
	return nil
}

// Release unbinds peer's address: the key left the allow list.
func (p *Pool) Release(peer string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byPeer[peer]; ok {
		delete(p.byPeer, peer)
		delete(p.byAddr, a)
		p.save() // a stale binding on disk is pruned at the next start
	}
}

// Retain unbinds every key for which keep is false: at start, the keys
// that left the allow list while the gateway was down.
func (p *Pool) Retain(keep func(peer string) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := false
	for peer, a := range p.byPeer {
		if !keep(peer) {
			delete(p.byPeer, peer)
			delete(p.byAddr, a)
			changed = true
		}
	}
	if changed {
		p.save()
	}
}

// Leased is the number of addresses bound.
func (p *Pool) Leased() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byAddr)
}

// Address is peer's bound address, if any.
func (p *Pool) Address(peer string) (netip.Addr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.byPeer[peer]
	return a, ok
}

// binding is one line of the pool file.
type binding struct {
	Pin     string     `json:"pin"`
	Address netip.Addr `json:"address"`
}

// maxPoolFile bounds the pool file: a /8 of bindings is under 2^24 * 120
// bytes, far more than any gateway leases; this is 64 MiB.
const maxPoolFile = 64 << 20

// Persist makes the pool keep its bindings in the file at path: those
// already there (written by an earlier run) are loaded, and every change
// is written back (a new file renamed over the old, so a crash leaves one
// or the other). A missing file is an empty pool. Bindings outside the
// prefix, or a second binding of an address or key, fail the load: the
// file is the gateway's own, and guessing would hand out an address
// twice.
func (p *Pool) Persist(path string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.Open(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		p.path = path
		return p.save()
	case err != nil:
		return fmt.Errorf("ike: pool file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPoolFile+1))
	if err != nil {
		return fmt.Errorf("ike: pool file %s: %w", path, err)
	}
	if len(b) > maxPoolFile {
		return fmt.Errorf("ike: pool file %s: over %d bytes", path, maxPoolFile)
	}
	byAddr, byPeer := map[netip.Addr]string{}, map[string]netip.Addr{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	for n := 1; dec.More(); n++ {
		var e binding
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("ike: pool file %s: binding %d: %w", path, n, err)
		}
		switch _, dupAddr := byAddr[e.Address]; {
		case e.Pin == "" || !e.Address.IsValid():
			return fmt.Errorf("ike: pool file %s: binding %d: want a pin and an address", path, n)
		case !p.usable(e.Address):
			return fmt.Errorf("ike: pool file %s: binding %d: %s is not a usable address of pool %s", path, n, e.Address, p.prefix)
		case dupAddr:
			return fmt.Errorf("ike: pool file %s: binding %d: %s bound twice", path, n, e.Address)
		}
		if _, dup := byPeer[e.Pin]; dup {
			return fmt.Errorf("ike: pool file %s: binding %d: pin %s bound twice", path, n, e.Pin)
		}
		byAddr[e.Address], byPeer[e.Pin] = e.Pin, e.Address
	}
	p.byAddr, p.byPeer, p.path = byAddr, byPeer, path
	return nil
}

// save writes the bindings to the pool file, if any (p.mu held).
func (p *Pool) save() error {
	if p.path == "" {
		return nil
	}
	out := make([]binding, 0, len(p.byPeer))
	for pin, a := range p.byPeer {
		out = append(out, binding{pin, a})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address.Less(out[j].Address) })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, b := range out {
		enc.Encode(b)
	}
	if err := atomicfile.Write(p.path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("ike: pool file: %w", err)
	}
	return nil
}

package ike

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// ErrPoolExhausted is returned when every address of a pool is leased.
var ErrPoolExhausted = errors.New("address pool exhausted")

// Pool hands out virtual IPv4 addresses (INTERNAL_IP4_ADDRESS) from a
// prefix, never the same address to two peers at once. A peer (by key
// pin) that asks again while it holds an address gets the same one, so a
// server re-opening its tunnel after kexec keeps its inner address.
type Pool struct {
	mu     sync.Mutex
	prefix netip.Prefix
	byAddr map[netip.Addr]string
	byPeer map[string]netip.Addr
	next   netip.Addr
}

// NewPool makes a pool over prefix; the network and broadcast addresses
// are never handed out.
func NewPool(prefix netip.Prefix) (*Pool, error) {
	prefix = prefix.Masked()
	if !prefix.Addr().Is4() || prefix.Bits() > 30 {
		return nil, fmt.Errorf("ike: pool %s: want an IPv4 prefix of /30 or shorter", prefix)
	}
	return &Pool{prefix: prefix, byAddr: map[netip.Addr]string{}, byPeer: map[string]netip.Addr{}, next: prefix.Addr().Next()}, nil
}

// Prefix is the pool's range.
func (p *Pool) Prefix() netip.Prefix { return p.prefix }

// Acquire leases an address to peer.
func (p *Pool) Acquire(peer string) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byPeer[peer]; ok {
		return a, nil
	}
	a := p.next
	for range 1 << (32 - p.prefix.Bits()) {
		if !p.usable(a) {
			a = p.prefix.Addr().Next()
		}
		if _, taken := p.byAddr[a]; !taken {
			p.byAddr[a], p.byPeer[peer] = peer, a
			p.next = a.Next()
			return a, nil
		}
		a = a.Next()
	}
	return netip.Addr{}, fmt.Errorf("ike: pool %s: %w (%d leased)", p.prefix, ErrPoolExhausted, len(p.byAddr))
}

func (p *Pool) usable(a netip.Addr) bool {
	if !p.prefix.Contains(a) || a == p.prefix.Addr() {
		return false
	}
	return p.prefix.Contains(a.Next()) // not the broadcast address
}

// Release returns peer's address to the pool.
func (p *Pool) Release(peer string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byPeer[peer]; ok {
		delete(p.byPeer, peer)
		delete(p.byAddr, a)
	}
}

// Leased is the number of addresses in use.
func (p *Pool) Leased() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byAddr)
}

package borrower

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"ferry/ipsec/ike"
)

// Peer is a lent server the gateway reports connected: the virtual IP it
// holds and either its key's pin (ferry gateway) or its connection's name
// (strongSwan, "ferry-LEASE-SERVER").
type Peer struct {
	VIP   netip.Addr
	Pin   string
	Conn  string
	Since time.Time // when its connection came up; zero if the gateway does not say
	// DataPath is ferry gateway's view of its ESP: alive, idle, stalled.
	DataPath string
}

// Tunnels is what the image gate needs of the gateway: who holds which
// virtual IP now.
type Tunnels interface {
	Peers(ctx context.Context) ([]Peer, error)
}

// ferryStatus reads ferry gateway's status socket (ike.ServeControl).
type ferryStatus struct{ path string }

func (f ferryStatus) Peers(ctx context.Context) ([]Peer, error) {
	out, err := ike.Control(ctx, f.path, "status")
	if err != nil {
		return nil, fmt.Errorf("gateway status %s: %w", f.path, err)
	}
	peers, err := parseFerryStatus(out)
	if err != nil {
		return nil, fmt.Errorf("gateway status %s: %w", f.path, err)
	}
	return peers, nil
}

// maxSAs bounds the SAs read from the status socket.
const maxSAs = 65536

// parseFerryStatus reads the JSON list of SAs the status socket answers,
// keeping established responder SAs that hold a virtual IP and a pin.
func parseFerryStatus(data []byte) ([]Peer, error) {
	var sas []ike.SAStatus
	if err := json.Unmarshal(data, &sas); err != nil {
		return nil, fmt.Errorf("status answer: %w", err)
	}
	if len(sas) > maxSAs {
		return nil, fmt.Errorf("status answer: %d SAs, over %d", len(sas), maxSAs)
	}
	var out []Peer
	for i, sa := range sas {
		// Opened: an SA this end opened; the role flips with whoever rekeyed.
		if sa.Opened || sa.State != "established" || sa.VirtualIP == "" {
			continue
		}
		vip, err := netip.ParseAddr(sa.VirtualIP)
		if err != nil {
			return nil, fmt.Errorf("status answer: SA %d: virtual_ip %.80q: %w", i, sa.VirtualIP, err)
		}
		if sa.Pin == "" {
			continue
		}
		p := Peer{VIP: vip, Pin: sa.Pin, DataPath: sa.DataPath}
		if since, err := time.Parse(time.RFC3339, sa.Since); err == nil {
			p.Since = since.UTC() // the connection's start, kept across rekeys
		} else if age, err := time.ParseDuration(sa.Age); err == nil && age >= 0 {
			p.Since = time.Now().Add(-age).Truncate(time.Second).UTC()
		}
		out = append(out, p)
	}
	return out, nil
}

// vipCache answers "who holds this address" from the gateway's last
// answer, asking again when it is older than ttl, or, for an address it
// does not know, older than minAge (a server that just connected is not
// kept waiting a whole ttl).
type vipCache struct {
	src         Tunnels
	ttl, minAge time.Duration
	mu          sync.Mutex
	at          time.Time
	byVIP       map[netip.Addr]Peer
}

func newVIPCache(src Tunnels) *vipCache {
	return &vipCache{src: src, ttl: 2 * time.Second, minAge: 250 * time.Millisecond}
}

// lookup returns the peer holding ip, if the gateway reports one.
func (c *vipCache) lookup(ctx context.Context, ip netip.Addr) (Peer, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	age := time.Since(c.at)
	p, ok := c.byVIP[ip]
	if c.byVIP != nil && (age < c.minAge || ok && age < c.ttl) {
		return p, ok, nil
	}
	peers, err := c.src.Peers(ctx)
	if err != nil {
		return Peer{}, false, err
	}
	c.at, c.byVIP = time.Now(), make(map[netip.Addr]Peer, len(peers))
	for _, p := range peers {
		c.byVIP[p.VIP] = p
	}
	p, ok = c.byVIP[ip]
	return p, ok, nil
}

package ike

import (
	"crypto/x509"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/ipsec/authz"
)

// Lease tests ("A lease that lasts", item 3) run in subnet 10.38.

// key is one lease's server key, listed on the gateway's allow list.
type key struct {
	pin string
	cfg Config
}

func (l *lab) listedKey(t *testing.T, lease string) key {
	t.Helper()
	k, c, pin := l.creds.issue(t, lease, time.Hour)
	if err := l.allow.Add(authz.Entry{Pin: pin, Lease: lease}); err != nil {
		t.Fatal(err)
	}
	cfg := l.initCfg
	cfg.Certs, cfg.Key = []*x509.Certificate{c}, k
	return key{pin: pin, cfg: cfg}
}

// session connects k from the initiator's namespace and returns the
// running initiator and the virtual IP it got.
func (l *lab) session(t *testing.T, k key) (*endpoint, netip.Addr, error) {
	t.Helper()
	e, err := l.connect(t, k.cfg)
	if err != nil {
		e.halt()
		return nil, netip.Addr{}, err
	}
	return e, netip.MustParseAddr(e.d.Status()[0].VirtualIP), nil
}

// hangUp stops an initiator; lose makes its DELETE get lost (the link is
// down while it stops), as when a server reboots or freezes.
func (l *lab) hangUp(t *testing.T, e *endpoint, lose bool) {
	t.Helper()
	if lose {
		l.p.a.Do(t, func() { setLink(t, "ikev0", false) })
	}
	e.halt()
	if lose {
		l.p.a.Do(t, func() { setLink(t, "ikev0", true) })
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(l.gw.d.Status()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("gateway still holds %+v 5 s after the initiator deleted its SA", l.gw.d.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *lab) smallPool(t *testing.T, file string) {
	t.Helper()
	pool, err := NewPool(netip.PrefixFrom(l.n.vipPool.Addr(), 30)) // two addresses
	if err != nil {
		t.Fatal(err)
	}
	if file != "" {
		if err := pool.Persist(file); err != nil {
			t.Fatal(err)
		}
	}
	l.gwCfg.Pool = pool
}

// An address belongs to its key until the key leaves the allow list: the
// SA ending (here a clean DELETE) frees nothing.
func TestAddressStaysWithKeyUntilItLeavesAllowList(t *testing.T) {
	l := newLabOn(t, 38)
	l.smallPool(t, "")
	l.startGateway(t)
	k1, k2, k3 := l.listedKey(t, "lease-1"), l.listedKey(t, "lease-2"), l.listedKey(t, "lease-3")
	e, a1, err := l.session(t, k1)
	if err != nil {
		t.Fatal(err)
	}
	l.hangUp(t, e, false)
	e, a2, err := l.session(t, k2)
	if err != nil {
		t.Fatal(err)
	}
	l.hangUp(t, e, false)
	if e, a3, err := l.session(t, k3); err == nil {
		t.Fatalf("lease-3 got %v from a two-address pool whose addresses are bound to lease-1 (%v) and lease-2 (%v), both still on the allow list; want INTERNAL_ADDRESS_FAILURE", a3, a1, a2)
		e.halt()
	} else if !strings.Contains(err.Error(), "INTERNAL_ADDRESS_FAILURE") {
		t.Fatalf("lease-3 with the pool bound to two other leases: %v; want INTERNAL_ADDRESS_FAILURE", err)
	}
	e, again, err := l.session(t, k1)
	if err != nil || again != a1 {
		t.Fatalf("lease-1 reconnecting: %v, %v; want its address %v", again, err, a1)
	}
	l.hangUp(t, e, false)
	l.allow.Remove(t.Context(), k1.pin) // lease-1 ends
	e, a3, err := l.session(t, k3)
	if err != nil || a3 != a1 {
		t.Fatalf("lease-3 after lease-1 ended: %v, %v; want lease-1's freed %v", a3, err, a1)
	}
	e.halt()
}

// A restarted gateway gives each key the address it had: the bindings
// are kept in the pool file, and those of keys that left the allow list
// meanwhile are dropped.
func TestRestartedGatewayGivesEachKeyItsAddress(t *testing.T) {
	l := newLabOn(t, 38)
	file := filepath.Join(t.TempDir(), "gateway-allow.jsonl.addresses")
	l.smallPool(t, file)
	l.startGateway(t)
	k1, k2 := l.listedKey(t, "lease-1"), l.listedKey(t, "lease-2")
	e, a1, err := l.session(t, k1)
	if err != nil {
		t.Fatal(err)
	}
	l.hangUp(t, e, true)
	e, a2, err := l.session(t, k2)
	if err != nil {
		t.Fatal(err)
	}
	l.hangUp(t, e, true)
	l.gw.halt()
	l.smallPool(t, file) // a new process reads the file
	l.startGateway(t)
	e, got2, err := l.session(t, k2)
	if err != nil || got2 != a2 {
		t.Fatalf("lease-2 after the gateway restarted: %v, %v; want its address %v", got2, err, a2)
	}
	l.hangUp(t, e, false)
	e, got1, err := l.session(t, k1)
	if err != nil || got1 != a1 {
		t.Fatalf("lease-1 after the gateway restarted: %v, %v; want its address %v", got1, err, a1)
	}
	e.halt()
}

// INITIAL_CONTACT: a server that rebooted (its DELETE lost) connects
// afresh; the gateway drops the key's older SA at once rather than hold
// two SAs, and two CHILD_SAs, for one address until DPD.
func TestInitialContactReplacesOlderSAsOfKey(t *testing.T) {
	l := newLabOn(t, 38)
	l.startGateway(t)
	k := l.listedKey(t, "lease-1")
	e, a, err := l.session(t, k)
	if err != nil {
		t.Fatal(err)
	}
	old := e.d.Status()[0].SPIi
	l.hangUp(t, e, true)
	e, again, err := l.session(t, k)
	if err != nil || again != a {
		t.Fatalf("reconnect after a reboot: %v, %v; want the same address %v", again, err, a)
	}
	gs := l.gw.d.Status()
	if len(gs) != 1 || gs[0].SPIi == old || len(gs[0].Children) != 1 {
		t.Fatalf("gateway holds %+v after the key's fresh connection; want only the new IKE SA (not %s) and its CHILD_SA", gs, old)
	}
	if !strings.Contains(gs[0].LastReconnectReason, "INITIAL_CONTACT") || gs[0].Reconnects != 1 {
		t.Errorf("gateway status of the key: reconnects %d, reason %q; want 1 and the INITIAL_CONTACT", gs[0].Reconnects, gs[0].LastReconnectReason)
	}
	transfer(t, l, 256<<10, nil)
	e.halt()
}

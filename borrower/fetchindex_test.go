package borrower

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"ferry/api"
	"ferry/gatewayctl"
	"ferry/store"
)

// fullScan is the gate as it was before the index, reading every lease
// for each request (store order), with the lease's end checked at the
// request: the reference the index must agree with.
func fullScan(ls []Lease, peer Peer, image string, now time.Time) (string, error) {
	for _, l := range ls {
		if i, ok := holds(l, peer); l.State == StateActive && !expired(l, now) && ok {
			if l.Image != image {
				return "", fmt.Errorf("%s is a server of lease %s, whose image is %q, not %q", peer.VIP, l.ID, l.Image, image)
			}
			if i < len(l.Roots) {
				return l.Roots[i], nil
			}
			return "", nil
		}
	}
	return "", fmt.Errorf("%s is held by no server of an active lease", peer.VIP)
}

// holds reports whether peer is one of l's servers, and which: its
// allowed pin, or its strongSwan connection.
func holds(l Lease, peer Peer) (int, bool) {
	for i, s := range l.Lender.Servers {
		if s.SPKIPin == "" || !slices.Contains(l.Pins, s.SPKIPin) {
			continue
		}
		if i < len(l.Addrs) && l.Addrs[i].IsValid() && peer.VIP != l.Addrs[i] {
			continue // the gateway gives the key this address alone
		}
		if peer.Pin != "" && peer.Pin == s.SPKIPin {
			return i, true
		}
		if peer.Conn != "" && peer.Conn == (gatewayctl.Conn{Lease: l.Lender.ID, Server: s.ID}).Name() {
			return i, true
		}
	}
	return 0, false
}

// leaseGen makes leases out of small pools of ids, pins and addresses,
// so that random operations collide: the same pin in two leases, two
// servers on one address, a lease without addresses.
type leaseGen struct {
	r   *rand.Rand
	now time.Time
}

var (
	genIDs    = []string{"B1", "B2", "B3", "B4"}
	genPins   = []string{"pa", "pb", "pc", "pd", "pe"}
	genImages = []string{"b1", "b2"}
	genStates = []string{StateRequesting, StateActive, StateActive, StateActive, StateReturning, StateReturned, StateFailed}
)

func (g leaseGen) addr() netip.Addr {
	if g.r.IntN(6) == 0 {
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte{10, 9, 8, byte(1 + g.r.IntN(4))})
}

func (g leaseGen) end() time.Time {
	switch g.r.IntN(4) {
	case 0:
		return time.Time{}
	case 1:
		return g.now.Add(-time.Minute)
	}
	return g.now.Add(time.Duration(g.r.IntN(120)) * time.Second)
}

func (g leaseGen) lease(id string) Lease {
	l := Lease{ID: id, State: genStates[g.r.IntN(len(genStates))], Image: genImages[g.r.IntN(2)],
		Lender: api.Lease{ID: "L" + id, Expires: g.end()}}
	n := g.r.IntN(4)
	for i := range n {
		l.Lender.Servers = append(l.Lender.Servers, api.LeaseServer{ID: fmt.Sprintf("s%d", i), SPKIPin: genPins[g.r.IntN(len(genPins))]})
		if g.r.IntN(3) > 0 {
			l.Pins = append(l.Pins, genPins[g.r.IntN(len(genPins))])
		}
		if g.r.IntN(5) > 0 {
			l.Addrs = append(l.Addrs, g.addr())
		}
		if g.r.IntN(5) > 0 {
			l.Roots = append(l.Roots, fmt.Sprintf("%s-%d", id, i))
		}
	}
	return l
}

func (g leaseGen) peer() Peer {
	p := Peer{VIP: g.addr()}
	if !p.VIP.IsValid() {
		p.VIP = netip.MustParseAddr("10.9.8.9")
	}
	if g.r.IntN(3) == 0 {
		p.Conn = gatewayctl.Conn{Lease: "L" + genIDs[g.r.IntN(len(genIDs))], Server: fmt.Sprintf("s%d", g.r.IntN(4))}.Name()
	} else {
		p.Pin = genPins[g.r.IntN(len(genPins))]
	}
	return p
}

// TestFetchIndexDecidesAsTheFullScan: after every one of random
// sequences of lease writes (new leases, state changes, pins allowed and
// dropped, ends moved, deletes, transactions rolled back, restarts), the
// indexed gate answers every peer exactly as the scan of the store does,
// at times before and after the leases' ends.
func TestFetchIndexDecidesAsTheFullScan(t *testing.T) {
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	g := leaseGen{r: rand.New(rand.NewPCG(seed, 1)), now: time.Now()}
	raw, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for run := range 8 {
		st := &leaseIndexer{Store: raw} // a start: built from the store
		for op := range 60 {
			id := genIDs[g.r.IntN(len(genIDs))]
			var what string
			err := st.Update(ctx, func(tx store.Tx) error {
				var l Lease
				found := tx.Get(store.Leases, id, &l) == nil
				switch k := g.r.IntN(9); {
				case !found || k == 0:
					what = "write a new lease"
					return tx.Put(store.Leases, id, g.lease(id))
				case k == 1:
					what = "change the state"
					l.State = genStates[g.r.IntN(len(genStates))]
				case k == 2 && len(l.Pins) > 0:
					what = "drop a pin (conflict)"
					l.Pins = slices.Delete(l.Pins, 0, 1)
				case k == 3:
					what = "allow a pin"
					l.Pins = append(l.Pins, genPins[g.r.IntN(len(genPins))])
				case k == 4:
					what = "move the end"
					l.Lender.Expires = g.end()
				case k == 5:
					what = "delete"
					return tx.Delete(store.Leases, id)
				case k == 6:
					what = "write, then roll back"
					l.State, l.Pins = StateActive, genPins
					if err := tx.Put(store.Leases, id, &l); err != nil {
						return err
					}
					return errors.New("rolled back")
				case k == 7:
					what = "write two leases in one transaction"
					if err := tx.Put(store.Leases, id, g.lease(id)); err != nil {
						return err
					}
					o := genIDs[g.r.IntN(len(genIDs))]
					return tx.Put(store.Leases, o, g.lease(o))
				default:
					what = "new addresses"
					l.Addrs = []netip.Addr{g.addr(), g.addr()}
				}
				return tx.Put(store.Leases, id, &l)
			})
			if err != nil && err.Error() != "rolled back" {
				t.Fatal(err)
			}
			ls, err := readLeases(ctx, raw)
			if err != nil {
				t.Fatal(err)
			}
			x, err := st.index(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for range 40 {
				p, image := g.peer(), genImages[g.r.IntN(2)]
				at := g.now.Add(time.Duration(g.r.IntN(150)-30) * time.Second)
				root, err := x.decide(p, image, at)
				wroot, werr := fullScan(ls, p, image, at)
				if root != wroot || fmt.Sprint(err) != fmt.Sprint(werr) {
					t.Fatalf("run %d op %d (%s on %s): peer %+v image %s at %s: index %q, %v; the scan %q, %v\nleases %+v",
						run, op, what, id, p, image, at.Sub(g.now), root, err, wroot, werr, ls)
				}
			}
		}
	}
}

func TestStrongSwanPeerHoldsOnlyItsOwnServersConn(t *testing.T) {
	l := Lease{ID: "B1", Image: "b1", State: StateActive, Pins: []string{"pin-a"}, Lender: api.Lease{ID: "L1", Servers: []api.LeaseServer{
		{ID: "s1", SPKIPin: "pin-a"}, {ID: "s2", SPKIPin: "pin-b"}}}}
	vip := netip.MustParseAddr("10.44.8.1")
	if !held(l, Peer{VIP: vip, Conn: "ferry-L1-s1"}) {
		t.Error("the conn of an allowed server does not hold the lease")
	}
	l.Addrs = []netip.Addr{netip.MustParseAddr("10.44.8.2"), netip.MustParseAddr("10.44.8.3")}
	if held(l, Peer{VIP: vip, Conn: "ferry-L1-s1"}) {
		t.Error("the allowed server's conn holds the lease from an address that is not the server's")
	}
	if !held(l, Peer{VIP: l.Addrs[0], Conn: "ferry-L1-s1"}) {
		t.Error("the conn of an allowed server at its own address does not hold the lease")
	}
	l.Addrs = nil
	if held(l, Peer{VIP: vip, Conn: "ferry-L1-s2"}) {
		t.Error("the conn of a server whose key was never allowed holds the lease")
	}
	if held(l, Peer{VIP: vip, Conn: "ferry-L2-s1"}) {
		t.Error("another lease's conn holds the lease")
	}
}

// held asks the index built from l alone.
func held(l Lease, p Peer) bool {
	_, err := newFetchIndex([]Lease{l}).decide(p, l.Image, time.Now())
	return err == nil
}

// TestPollAsksInFullWhileARefreshHasWorkLeft: the lease's tag (a 304
// from the lender skips the refresh) only once its keys are all on the
// gateway and its tunnel addresses assigned.
func TestPollAsksInFullWhileARefreshHasWorkLeft(t *testing.T) {
	l := Lease{ID: "B1", State: StateActive, Count: 1, Addrs: []netip.Addr{netip.MustParseAddr("10.9.8.1")},
		Lender: api.Lease{ID: "L1", Servers: []api.LeaseServer{{ID: "s0", SPKIPin: "pa"}}}}
	if h := headOf(l); h.LenderTag != "" {
		t.Errorf("a lease whose key the gateway has not taken is tagged: a 304 would skip the retry of its Allow")
	}
	l.Pins = []string{"pa"}
	if h := headOf(l); h.LenderTag == "" {
		t.Errorf("a lease with nothing left to do is not tagged: every poll is answered in full")
	}
	l.Count = 2
	if h := headOf(l); h.LenderTag != "" {
		t.Errorf("a lease short of tunnel addresses is tagged: a 304 would skip their assignment")
	}
}

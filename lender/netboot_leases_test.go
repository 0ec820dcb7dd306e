package lender

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"ferry/netboot"
	"ferry/store"
)

var nbConf = NetbootConfig{Interface: "lo", ServerIP: "10.56.0.1", Mode: "dhcp", PoolFirst: "10.56.0.100",
	PoolLast: "10.56.0.101", Prefix: "10.56.0.0/24", KernelA: "/k", InitrdA: "/i"}

// fixtureAt is newFixture on a store file whose path it returns.
func fixtureAt(t *testing.T, n int) (*fixture, string) {
	t.Helper()
	f := newFixture(t, 0)
	path := filepath.Join(t.TempDir(), "lender.db")
	f.restart(t, path)
	for i := range n {
		if _, err := f.m.AddServer(context.Background(), Server{MAC: macOf(i), Power: "manual", Pool: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	return f, path
}

// restart closes the fixture's store and opens it again under a new
// Manager that resumes, as `ferry lender serve` does after a restart.
func (f *fixture) restart(t *testing.T, path string) {
	t.Helper()
	f.st.Close()
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	f.m = New(st, f.m.ca, f.m.log, Options{PublicURL: f.m.url, TokenTTL: f.m.tokenLife(), Now: f.m.now})
	if err := f.m.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) netboot(t *testing.T) *netboot.Server {
	t.Helper()
	nb, err := netbootServer(f.m, nbConf)
	if err != nil {
		t.Fatal(err)
	}
	return nb
}

// dhcpAcquire runs DISCOVER/REQUEST for the i-th server; the zero Addr
// when the server gets no offer.
func dhcpAcquire(t *testing.T, nb *netboot.Server, i int) netip.Addr {
	t.Helper()
	mac, _ := net.ParseMAC(macOf(i))
	d, _ := dhcpv4.NewDiscovery(mac)
	offer, err := nb.Answer(context.Background(), d)
	if err != nil {
		return netip.Addr{}
	}
	req, _ := dhcpv4.NewRequestFromOffer(offer)
	ack, err := nb.Answer(context.Background(), req)
	if err != nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("%s: REQUEST for %v: %v %v", mac, offer.YourIPAddr, ack, err)
	}
	a, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
	return a
}

func TestDHCPLeaseSurvivesLenderRestartAndEndsAtReturn(t *testing.T) {
	ctx := context.Background()
	f, path := fixtureAt(t, 3)
	l0, err := f.m.RequestLease(ctx, leaseReq("key-00000561", 1))
	if err != nil {
		t.Fatal(err)
	}
	held := dhcpAcquire(t, f.netboot(t), 0)

	f.restart(t, path)
	nb := f.netboot(t)
	if _, err := f.m.RequestLease(ctx, leaseReq("key-00000562", 2)); err != nil {
		t.Fatal(err)
	}
	if a := dhcpAcquire(t, nb, 0); a != held {
		t.Fatalf("after restart %s got %v, want its lease %v", macOf(0), a, held)
	}
	other := dhcpAcquire(t, nb, 1)
	if other == held || !other.IsValid() {
		t.Fatalf("after restart another server got %v while %s holds %v", other, macOf(0), held)
	}
	if a := dhcpAcquire(t, nb, 2); a.IsValid() {
		t.Fatalf("a third server got %v from a pool whose two addresses are held", a)
	}

	if _, err := f.m.ReturnLease(ctx, l0.ID); err != nil {
		t.Fatal(err)
	}
	waitFree(t, f, macOf(0))
	if a := dhcpAcquire(t, nb, 2); a != held {
		t.Fatalf("after %s was returned the third server got %v, want the freed %v", macOf(0), a, held)
	}
}

// waitFree waits for the background part of a return to free the server.
func waitFree(t *testing.T, f *fixture, mac string) {
	t.Helper()
	for range 500 {
		var s Server
		f.st.View(context.Background(), func(tx store.Tx) error { return tx.Get(store.Servers, mac, &s) })
		if s.State == ServerFree {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("server %s never came back to the pool", mac)
}

func TestDHCPLeaseStoreSkipsRecordsThatDoNotMatchTheirKey(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := dhcpLeases{st: st, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	good := netboot.Lease{MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, Addr: netip.MustParseAddr("10.56.0.100"), Expires: time.Unix(2e9, 0)}
	d.Put(context.Background(), good)
	st.Update(context.Background(), func(tx store.Tx) error {
		return tx.Put(store.Members, dhcpKey("52:54:00:00:00:02"), dhcpLeaseRec{MAC: "52:54:00:00:00:03", Addr: "10.56.0.101"})
	})
	ls, err := d.Load(context.Background())
	if err != nil || len(ls) != 1 || ls[0].MAC.String() != good.MAC.String() || ls[0].Addr != good.Addr || !ls[0].Expires.Equal(good.Expires) {
		t.Fatalf("Load = %v, %v; want only %v", ls, err, good)
	}
}

// FuzzDHCPLeaseRecord: a stored record either parses into a lease whose
// MAC is its key's and whose address is IPv4, or is refused.
func FuzzDHCPLeaseRecord(f *testing.F) {
	f.Add("dhcp/52:54:00:00:00:01", []byte(`{"mac":"52:54:00:00:00:01","addr":"10.56.0.100","expires":"2033-05-18T03:33:20Z"}`))
	f.Add("dhcp/52:54:00:00:00:01", []byte(`{"mac":"52-54-00-00-00-01","addr":"::1"}`))
	f.Fuzz(func(t *testing.T, key string, b []byte) {
		var rec dhcpLeaseRec
		l, err := dhcpLeaseOf(key, json.Unmarshal(b, &rec), rec)
		if err == nil && (dhcpKey(l.MAC.String()) != key || !l.Addr.Is4() || len(l.MAC) != 6) {
			t.Fatalf("record %q under %q accepted as %v", b, key, l)
		}
	})
}

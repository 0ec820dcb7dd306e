package ike

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"ferry/ipsec/authz"
	"ferry/ipsec/dataplane/dataplanetest"
	"ferry/pki"
)

// TestAllowListAddressIsTheOneTheServerGets: a key whose allow list line
// names a virtual_ip gets exactly that address (the borrower exported the
// server's root to it alone); a second key listed with an address another
// key holds is refused an address, not given another.
func TestAllowListAddressIsTheOneTheServerGets(t *testing.T) {
	ca, err := pki.NewCA("lender CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gk, gc, _ := ca.Issue(pki.Identity{CommonName: "gw"}, pki.ECDSAP256, time.Hour)
	pool, err := NewPool(netip.MustParsePrefix("10.38.8.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	allow := authz.New(testLog(t, "authz"), nil)
	lo := netip.MustParseAddr("127.0.0.1")
	fast := Backoff{Base: 100 * time.Millisecond, Max: 200 * time.Millisecond, Tries: 3}
	g500, g4500 := udp(t), udp(t)
	gw := runDaemon(t, Config{Local: lo, Certs: []*x509.Certificate{gc}, Key: gk, CAs: []*x509.Certificate{ca.Cert}, Authorizer: allow,
		Pool: pool, LocalSubnets: []netip.Prefix{netip.MustParsePrefix("10.38.2.0/24")}, Log: testLog(t, "gw"), Backoff: fast,
		DataPlane: dataplanetest.NewNull()}, g500, g4500)
	server := func(cn string, vip netip.Addr) error {
		k, c, _ := ca.Issue(pki.Identity{CommonName: cn}, pki.ECDSAP256, time.Hour)
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		allow.Replace(context.Background(), append(allow.Entries(), authz.Entry{Pin: hex.EncodeToString(sum[:]), Lease: "L1", VirtualIP: vip}))
		ini := runDaemon(t, Config{Local: lo, Certs: []*x509.Certificate{c}, Key: k, CAs: []*x509.Certificate{ca.Cert},
			Port: port(g500), NATPort: port(g4500), Log: testLog(t, cn), Backoff: fast,
			DataPlane: dataplanetest.NewNull()}, udp(t), udp(t))
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return ini.Connect(ctx, Target{Gateway: lo, VirtualIP: true})
	}
	want := netip.MustParseAddr("10.38.8.77")
	if err := server("L1/s1", want); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range gw.Status() {
		got = append(got, s.VirtualIP)
	}
	if len(got) != 1 || got[0] != want.String() {
		t.Fatalf("the gateway gave %v, want exactly the listed %s", got, want)
	}
	// authz refuses two keys with one address in one list, so the second
	// key's line names an address the pool has bound to the first key
	// through another path: a stale binding must not be shared.
	if err := pool.AcquireAt("some-other-key", netip.MustParseAddr("10.38.8.78")); err != nil {
		t.Fatal(err)
	}
	err = server("L1/s2", netip.MustParseAddr("10.38.8.78"))
	if err == nil || !strings.Contains(err.Error(), "INTERNAL_ADDRESS_FAILURE") {
		t.Fatalf("a key whose listed address is bound to another key: %v, want INTERNAL_ADDRESS_FAILURE", err)
	}
}

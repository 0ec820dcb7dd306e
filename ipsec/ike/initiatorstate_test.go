package ike

import (
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ferry/pki"
)

func TestStateReopensWithSameIdentity(t *testing.T) {
	ca, _ := pki.NewCA("ca", time.Hour)
	key, cert, _ := ca.Issue(pki.Identity{CommonName: "lease-7"}, pki.ECDSAP256, time.Hour)
	s := &InitiatorState{Gateway: netip.MustParseAddr("10.33.0.2"), VirtualIP: true, ForceEncap: true,
		RemoteSubnets: []netip.Prefix{netip.MustParsePrefix("10.33.2.0/24")}, TunnelPool: netip.MustParsePrefix("10.33.8.0/24"), Key: key, Certs: []*x509.Certificate{cert}, CAs: []*x509.Certificate{ca.Cert}}
	dir := filepath.Join(t.TempDir(), "state")
	if err := s.Save(dir, true); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, keyFile)); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	got, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := pki.Pin(key.Public())
	p2, _ := pki.Pin(got.Key.Public())
	if p1 != p2 || got.Gateway != s.Gateway || !got.VirtualIP || got.Certs[0].Subject.CommonName != "lease-7" || got.RemoteSubnets[0] != s.RemoteSubnets[0] || got.TunnelPool != s.TunnelPool {
		t.Fatalf("state changed through save/load: %+v", got)
	}
	if err := s.Save(dir, true); err == nil {
		t.Fatal("Save over an existing state succeeded")
	}
}

package lender

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"ferry/api"
	"ferry/lenderca"
	"ferry/store"
)

// fixture is a lender manager on a temp store with n free servers.
type fixture struct {
	m   *Manager
	st  *store.Bolt
	now time.Time
}

func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	dir := t.TempDir()
	ca, err := lenderca.Init(dir, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, now: time.Now()}
	f.m = New(st, ca, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{
		PublicURL: "https://127.0.0.1:1", TokenTTL: 5 * time.Minute, Now: func() time.Time { return f.now }})
	for i := range n {
		if _, err := f.m.AddServer(context.Background(), Server{MAC: macOf(i), Power: "manual", Pool: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func macOf(i int) string { return fmt.Sprintf("52:54:00:00:%02x:%02x", i/256, i%256) }

func leaseReq(key string, count int) api.LeaseRequest {
	r := api.LeaseRequest{IdempotencyKey: key, Count: count, Gateway: "10.41.0.1:500",
		BorrowerCA: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
		Image: api.Image{Kernel: api.Artifact{URL: "https://10.41.1.1/k", SHA256: fmt.Sprintf("%064x", 1)},
			Initrd: api.Artifact{URL: "https://10.41.1.1/i", SHA256: fmt.Sprintf("%064x", 2)}, Cmdline: "console=ttyS0"},
		DurationSeconds: 3600}
	for range count {
		r.Roots = append(r.Roots, api.NFSRoot{Server: "10.41.1.2", Path: "/roots/x"})
	}
	return r
}

// csrFor makes a P-256 key and a CSR with the given CN, as the agent does.
func csrFor(t testing.TB, cn string) (crypto.Signer, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// testFrom is the source address of enrollments in tests without netboot.
var testFrom = netip.MustParseAddr("10.57.0.9")

func lenderSubject(b Boot) lenderca.Subject {
	return lenderca.Subject{LeaseID: b.LeaseID, ServerID: b.ServerID}
}

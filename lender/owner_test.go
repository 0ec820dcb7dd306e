package lender

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/api"
	"ferry/pki"
	"ferry/store"
)

// org is a borrower organisation: its CA and its manager's client
// certificate.
type org struct {
	name   string
	ca     *pki.CA
	caFile string
	cert   tls.Certificate
}

func newOrg(t *testing.T, dir, name string) org {
	t.Helper()
	ca, err := pki.NewCA(name+"-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, cert, err := ca.Issue(pki.Identity{CommonName: name + "-m2m"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	o := org{name: name, ca: ca, caFile: filepath.Join(dir, name+"-ca.pem"),
		cert: tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}
	if err := os.WriteFile(o.caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return o
}

// m2mLab is the lender's m2m listener over mutual TLS on loopback.
type m2mLab struct {
	url    string
	roots  *x509.CertPool
	lender *pki.CA
}

// client is org's manager calling the lender.
func (l *m2mLab) client(o org) *api.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: l.roots,
		Certificates: []tls.Certificate{o.cert}}}
	return &api.Client{Base: l.url, HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// newM2MLab serves f's m2m API for the borrower organisations orgs, as
// the lender config lists them.
func newM2MLab(t *testing.T, f *fixture, orgs ...org) *m2mLab {
	t.Helper()
	dir := t.TempDir()
	lorg, err := pki.NewCA("lender-org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, cert, err := lorg.Issue(pki.Identity{CommonName: "lender-m2m", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.MarshalKeyPEM(key)
	certFile, keyFile := filepath.Join(dir, "m2m.pem"), filepath.Join(dir, "m2m.key")
	os.WriteFile(certFile, pki.CertPEM(cert), 0o644)
	os.WriteFile(keyFile, keyPEM, 0o600)
	cfg := Config{M2MCert: certFile, M2MKey: keyFile}
	for _, o := range orgs {
		cfg.Borrowers = append(cfg.Borrowers, BorrowerConfig{Name: o.name, CA: o.caFile})
	}
	bs, err := LoadBorrowers(cfg, f.m.log)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := bs.TLS(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f.m.M2MHandler(bs))
	srv.TLS = tlsCfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &m2mLab{url: srv.URL, roots: lorg.Pool(), lender: lorg}
}

// Two borrower organisations on one lender: each sees, reads and returns
// only its own leases; idempotency keys are each organisation's own.
func TestLeasesBelongToTheBorrowerThatMadeThem(t *testing.T) {
	f := newFixture(t, 2)
	dir := t.TempDir()
	acme, globex := newOrg(t, dir, "acme"), newOrg(t, dir, "globex")
	lab := newM2MLab(t, f, acme, globex)
	ctx := context.Background()
	a, g := lab.client(acme), lab.client(globex)

	var la, lg api.Lease
	if err := a.Call(ctx, "POST", api.PathLeases, leaseReq("shared-key-001", 1), &la); err != nil {
		t.Fatal(err)
	}
	// the same idempotency key from another organisation is another lease
	if err := g.Call(ctx, "POST", api.PathLeases, leaseReq("shared-key-001", 1), &lg); err != nil {
		t.Fatalf("globex's request with acme's key: %v", err)
	}
	if lg.ID == la.ID {
		t.Errorf("globex's request with acme's idempotency key was answered with acme's lease %s", la.ID)
	}
	var got api.Lease
	if err := g.Call(ctx, "GET", api.PathLeases+"/"+la.ID, nil, &got); err == nil {
		t.Errorf("globex read acme's lease %s: state %s, servers %d", la.ID, got.State, len(got.Servers))
	} else if fe, ok := err.(*api.FieldError); !ok || fe.Field != "lease" {
		t.Errorf("globex reading acme's lease: %v, want the 404 of a lease that does not exist", err)
	}
	if err := g.Call(ctx, "POST", api.PathLeases+"/"+la.ID+api.PathReturn, nil, &got); err == nil {
		t.Errorf("globex returned acme's lease %s: state %s", la.ID, got.State)
	}
	if err := a.Call(ctx, "GET", api.PathLeases+"/"+la.ID, nil, &got); err != nil || got.State != api.LeaseActive {
		t.Errorf("acme's own lease after globex's attempts: %+v, %v; want it active", got, err)
	}
	var list []api.Lease
	if err := g.Call(ctx, "GET", api.PathLeases, nil, &list); err != nil || len(list) != 1 || list[0].ID != lg.ID {
		t.Errorf("globex's lease list: %d leases, %v; want only %s", len(list), err, lg.ID)
	}
	if err := g.Call(ctx, "GET", api.PathMetric, nil, nil); err == nil {
		t.Error("a borrower reads the whole lender's /metrics")
	}
	if err := a.Call(ctx, "POST", api.PathLeases+"/"+la.ID+api.PathReturn, nil, &got); err != nil || got.State != api.LeaseReturned {
		t.Fatalf("acme returning its own lease: %+v, %v", got, err)
	}
}

// A client certificate of an organisation the lender does not list is
// refused in the handshake.
func TestUnlistedBorrowerIsRefused(t *testing.T) {
	f := newFixture(t, 1)
	dir := t.TempDir()
	lab := newM2MLab(t, f, newOrg(t, dir, "acme"))
	var list []api.Lease
	if err := lab.client(newOrg(t, dir, "initech")).Call(context.Background(), "GET", api.PathLeases, nil, &list); err == nil {
		t.Fatalf("an unlisted organisation listed leases: %+v", list)
	}
}

// A configuration of before "borrowers" keeps working: m2m_client_ca is
// the borrower "default"; a lender with no borrower at all is refused,
// and so are two borrowers one certificate could both be.
func TestBorrowerConfiguration(t *testing.T) {
	dir := t.TempDir()
	acme, globex := newOrg(t, dir, "acme"), newOrg(t, dir, "globex")
	base := `"dir": "d", "agent_listen": "127.0.0.1:8443", "public_url": "https://x", "m2m_listen": "127.0.0.1:9443", "m2m_cert": "c", "m2m_key": "k"`
	for _, tc := range []struct{ extra, err string }{
		{`"m2m_client_ca": "` + acme.caFile + `"`, ""},
		{`"borrowers": [{"name": "acme", "ca": "` + acme.caFile + `"}, {"name": "globex", "ca": "` + globex.caFile + `"}]`, ""},
		{`"m2m_client_ca": "` + acme.caFile + `", "borrowers": [{"name": "globex", "ca": "` + globex.caFile + `"}]`, ""},
		{``, "no borrower"},
		{`"m2m_client_ca": "` + acme.caFile + `", "borrowers": [{"name": "default", "ca": "` + globex.caFile + `"}]`, `"default": listed twice`},
		{`"borrowers": [{"name": "Acme Corp", "ca": "` + acme.caFile + `"}]`, `borrowers[0].name "Acme Corp"`},
		{`"borrowers": [{"name": "acme", "ca": "` + acme.caFile + `", "spki_sha256": "xyz"}]`, `borrowers[0].spki_sha256`},
		{`"borrowers": [{"name": "acme", "ca": "` + acme.caFile + `"}, {"name": "acme2", "ca": "` + acme.caFile + `"}]`, `trust a common CA`},
		{`"borrowers": [{"name": "acme", "ca": "` + acme.caFile + `", "cn": "a"}, {"name": "acme2", "ca": "` + acme.caFile + `", "cn": "b"}]`, ""},
	} {
		path := filepath.Join(dir, "lender.json")
		os.WriteFile(path, []byte("{"+base+sep(tc.extra)+"}"), 0o644)
		c, err := LoadConfig(path)
		if err == nil {
			_, err = LoadBorrowers(c, slog.New(slog.DiscardHandler))
		}
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("config {%s}: %v, want %q", tc.extra, err, tc.err)
		}
	}
}

func sep(s string) string {
	if s == "" {
		return ""
	}
	return ", " + s
}

// Leases stored before leases had owners belong to the borrower
// "default" (m2m_client_ca), with their unscoped idempotency keys.
func TestLeasesWithoutOwnerBelongToTheDefaultBorrower(t *testing.T) {
	f := newFixture(t, 2)
	ctx := context.Background()
	l, err := f.m.RequestLeaseFor(ctx, "acme", leaseReq("old-key-0001", 1))
	if err != nil {
		t.Fatal(err)
	}
	// rewrite it as an older lender stored it: no owner, a bare key
	err = f.st.Update(ctx, func(tx store.Tx) error {
		var rec leaseRec
		if err := tx.Get(store.Leases, l.ID, &rec); err != nil {
			return err
		}
		rec.Owner, rec.Borrower = "", ""
		if err := tx.Delete(store.Idem, idemKey("acme", "old-key-0001")); err != nil {
			return err
		}
		if err := tx.Put(store.Idem, "old-key-0001", l.ID); err != nil {
			return err
		}
		return tx.Put(store.Leases, l.ID, rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.m.LeaseOf(ctx, DefaultBorrower, l.ID); err != nil || got.Borrower != DefaultBorrower {
		t.Fatalf("the default borrower reading an ownerless lease: %+v, %v", got, err)
	}
	if _, err := f.m.LeaseOf(ctx, "acme", l.ID); err == nil {
		t.Fatal("another borrower reads an ownerless lease")
	}
	again, err := f.m.RequestLeaseFor(ctx, DefaultBorrower, leaseReq("old-key-0001", 1))
	if err != nil || again.ID != l.ID {
		t.Fatalf("the default borrower retrying its old key: %q, %v; want lease %s", again.ID, err, l.ID)
	}
}

// Two borrowers under one CA, told apart by cn and by key pin.
func TestBorrowersUnderOneCAAreToldApartByCNOrKey(t *testing.T) {
	dir := t.TempDir()
	shared := newOrg(t, dir, "shared")
	key, other, err := shared.ca.Issue(pki.Identity{CommonName: "globex-m2m"}, pki.ECDSAP256, time.Hour)
	if err != nil || key == nil {
		t.Fatal(err)
	}
	pin := fmt.Sprintf("%x", sha256.Sum256(other.RawSubjectPublicKeyInfo))
	bs, err := LoadBorrowers(Config{Borrowers: []BorrowerConfig{
		{Name: "acme", CA: shared.caFile, CN: "shared-m2m"}, {Name: "globex", CA: shared.caFile, SPKI: pin}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for cert, want := range map[*x509.Certificate]string{shared.cert.Leaf: "acme", other: "globex"} {
		if got, err := bs.Identify([]*x509.Certificate{cert}); got != want {
			t.Errorf("certificate %q is %q (%v), want %q", cert.Subject.CommonName, got, err, want)
		}
	}
	_, stranger, _ := shared.ca.Issue(pki.Identity{CommonName: "initech-m2m"}, pki.ECDSAP256, time.Hour)
	if got, err := bs.Identify([]*x509.Certificate{stranger}); err == nil {
		t.Errorf("a third certificate of the shared CA is %q", got)
	}
}

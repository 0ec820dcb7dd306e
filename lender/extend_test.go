package lender

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"ferry/api"
)

// agentClient calls f's agent API over TLS with a one-time certificate.
func agentClient(t *testing.T, f *fixture, cert tls.Certificate) (*http.Client, string) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(f.m.ca.Cert)
	srv := httptest.NewUnstartedServer(f.m.AgentHandler())
	srv.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	hc := srv.Client()
	hc.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{cert}
	return hc, srv.URL
}

func parsePEMCert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		t.Fatalf("no PEM certificate in %q", s)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A borrower lengthens its own lease; a retry of the same extension does
// not lengthen it twice; another borrower cannot; the lent server gets a
// renewed certificate for its key, until the new end; at return both
// certificates are revoked.
func TestBorrowerExtendsItsLeaseAndTheServerGetsARenewedCertificate(t *testing.T) {
	f := newFixture(t, 1)
	dir := t.TempDir()
	acme, globex := newOrg(t, dir, "acme"), newOrg(t, dir, "globex")
	lab := newM2MLab(t, f, acme, globex)
	ctx := context.Background()
	a, g := lab.client(acme), lab.client(globex)
	var l api.Lease
	if err := a.Call(ctx, "POST", api.PathLeases, leaseReq("extend-key-01", 1), &l); err != nil {
		t.Fatal(err)
	}
	b, _ := f.m.BootFor(l.Servers[0].MAC)
	key, csr := csrFor(t, b.LeaseID+"/"+b.ServerID)
	er, err := f.m.Enroll(ctx, testFrom, api.EnrollRequest{Token: b.Token, MAC: b.MAC, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	old := parsePEMCert(t, er.Certificate)

	until := l.Expires.Add(48 * time.Hour).Truncate(time.Second)
	if err := g.Call(ctx, "POST", api.PathLeases+"/"+l.ID+api.PathExtend, api.ExtendRequest{Until: until}, nil); err == nil {
		t.Fatal("globex extended acme's lease")
	}
	var got api.Lease
	for range 2 { // the second is a retry: the same end, not 48 h more
		if err := a.Call(ctx, "POST", api.PathLeases+"/"+l.ID+api.PathExtend, api.ExtendRequest{Until: until}, &got); err != nil {
			t.Fatal(err)
		}
	}
	if !got.Expires.Equal(until) {
		t.Fatalf("extended lease ends %s, want %s", got.Expires, until)
	}
	if err := a.Call(ctx, "POST", api.PathLeases+"/"+l.ID+api.PathExtend,
		api.ExtendRequest{Until: l.Created.Add(91 * 24 * time.Hour)}, &got); err == nil {
		t.Fatal("a lease extended beyond the longest lending")
	}

	hc, url := agentClient(t, f, tls.Certificate{Certificate: [][]byte{old.Raw}, PrivateKey: key})
	resp, err := hc.Get(url + api.PathCert)
	if err != nil {
		t.Fatal(err)
	}
	var cr api.CertResponse
	json.NewDecoder(resp.Body).Decode(&cr)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("renewed certificate: %s", resp.Status)
	}
	renewed := parsePEMCert(t, cr.Certificate)
	if string(renewed.RawSubjectPublicKeyInfo) != string(old.RawSubjectPublicKeyInfo) || !renewed.NotAfter.Equal(until) ||
		renewed.SerialNumber.Cmp(old.SerialNumber) == 0 || renewed.Subject.CommonName != old.Subject.CommonName {
		t.Fatalf("renewed certificate: key same %v, ends %s (want %s), serial %x (old %x), CN %q",
			string(renewed.RawSubjectPublicKeyInfo) == string(old.RawSubjectPublicKeyInfo), renewed.NotAfter, until,
			renewed.SerialNumber, old.SerialNumber, renewed.Subject.CommonName)
	}
	if _, err := renewed.Verify(x509.VerifyOptions{Roots: poolOf(f.m.ca.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("renewed certificate does not verify against the lender CA: %v", err)
	}

	if err := a.Call(ctx, "POST", api.PathLeases+"/"+l.ID+api.PathReturn, nil, &got); err != nil {
		t.Fatal(err)
	}
	crl, _ := f.m.CRL(ctx)
	for _, c := range []string{er.Certificate, cr.Certificate} {
		if !crlLists(t, crl, c) {
			t.Errorf("CRL after return lacks a certificate of the lease")
		}
	}
}

func poolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

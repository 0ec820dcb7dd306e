package lender

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"ferry/api"
	"ferry/lenderca"
)

func leaseAndBoot(t *testing.T, f *fixture) (api.Lease, Boot) {
	t.Helper()
	l, err := f.m.RequestLease(context.Background(), leaseReq("key-00000001", 1))
	if err != nil {
		t.Fatal(err)
	}
	b, ok := f.m.BootFor(l.Servers[0].MAC)
	if !ok {
		t.Fatalf("no boot parameters for %s after the lease", l.Servers[0].MAC)
	}
	return l, b
}

func enroll(f *fixture, b Boot, mac, cn string, t *testing.T) (api.EnrollResponse, error) {
	_, csr := csrFor(t, cn)
	return f.m.Enroll(context.Background(), testFrom, api.EnrollRequest{Token: b.Token, MAC: mac, CSR: csr})
}

func wantRefusal(t *testing.T, err error, field, words string) {
	t.Helper()
	var fe *api.FieldError
	if !errors.As(err, &fe) || fe.Field != field || !strings.Contains(fe.Reason, words) {
		t.Fatalf("error = %v, want a refusal of %s saying %q", err, field, words)
	}
}

func TestEnrollGivesCertificateBoundToLease(t *testing.T) {
	f := newFixture(t, 1)
	l, b := leaseAndBoot(t, f)
	resp, err := enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Root.Path != "/roots/x" || resp.Gateway != "10.41.0.1:500" || resp.Image.Kernel.URL != "https://10.41.1.1/k" {
		t.Errorf("enrollment answer root %+v gateway %q kernel %q, want the lease's", resp.Root, resp.Gateway, resp.Image.Kernel.URL)
	}
	blk, _ := pem.Decode([]byte(resp.Certificate))
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	subj, ok := lenderca.ParseURI(cert.URIs[0])
	if !ok || subj.LeaseID != l.ID || subj.ServerID != l.Servers[0].ID {
		t.Errorf("certificate names %v, want lease %s server %s", cert.URIs, l.ID, l.Servers[0].ID)
	}
	if !cert.NotAfter.Equal(l.Expires.Truncate(time.Second)) {
		t.Errorf("certificate ends %s, want the lease's end %s", cert.NotAfter, l.Expires)
	}
	got, _ := f.m.Lease(context.Background(), l.ID)
	if got.Servers[0].SPKIPin != lenderca.SPKIPin(cert.RawSubjectPublicKeyInfo) || got.Servers[0].Phase != PhaseEnrolled {
		t.Errorf("lease shows pin %q phase %q, want the certificate's key and enrolled", got.Servers[0].SPKIPin, got.Servers[0].Phase)
	}
}

func TestEnrollRefusesReusedToken(t *testing.T) {
	f := newFixture(t, 1)
	_, b := leaseAndBoot(t, f)
	if _, err := enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t); err != nil {
		t.Fatal(err)
	}
	// another key with the used token: a second machine claims the boot
	_, err := enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t)
	wantRefusal(t, err, "token", "second enrollment in one boot")
}

func TestEnrollRefusesExpiredToken(t *testing.T) {
	f := newFixture(t, 1)
	_, b := leaseAndBoot(t, f)
	f.now = f.now.Add(6 * time.Minute)
	_, err := enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t)
	wantRefusal(t, err, "token", "expired")
}

func TestEnrollRefusesWrongMAC(t *testing.T) {
	f := newFixture(t, 2)
	_, b := leaseAndBoot(t, f)
	_, err := enroll(f, b, "02:00:00:00:00:99", b.LeaseID+"/"+b.ServerID, t)
	wantRefusal(t, err, "mac", "bound to "+b.MAC)
}

func TestEnrollRefusesForgedToken(t *testing.T) {
	f := newFixture(t, 1)
	_, b := leaseAndBoot(t, f)
	b.Token = strings.Repeat("A", 43)
	_, err := enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t)
	wantRefusal(t, err, "token", "not issued")
}

func TestEnrollRefusesSubjectOfAnotherServer(t *testing.T) {
	f := newFixture(t, 1)
	_, b := leaseAndBoot(t, f)
	_, err := enroll(f, b, b.MAC, b.LeaseID+"/sOTHER", t)
	wantRefusal(t, err, "csr_pem.subject", "the lease allows only")
	// the token is still good for the right CSR
	if _, err := enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t); err != nil {
		t.Fatalf("after a refused CSR the token should still enroll: %v", err)
	}
}

func TestLeaseOverPoolSizeLeavesNothing(t *testing.T) {
	f := newFixture(t, 2)
	_, err := f.m.RequestLease(context.Background(), leaseReq("key-00000002", 3))
	wantRefusal(t, err, "count", "pool \"\" has 2 free")
	ls, _ := f.m.Leases(context.Background())
	srv, _ := f.m.Servers(context.Background())
	if len(ls) != 0 || srv[0].State != ServerFree || srv[1].State != ServerFree {
		t.Fatalf("after a refused lease: %d leases, servers %v; want none and all free", len(ls), srv)
	}
}

func TestRetriedLeaseRequestLeasesOnce(t *testing.T) {
	f := newFixture(t, 4)
	a, err := f.m.RequestLease(context.Background(), leaseReq("key-00000003", 2))
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.m.RequestLease(context.Background(), leaseReq("key-00000003", 2))
	if err != nil || b.ID != a.ID {
		t.Fatalf("retry gave %q, %v; want lease %s again", b.ID, err, a.ID)
	}
	srv, _ := f.m.Servers(context.Background())
	free := 0
	for _, s := range srv {
		if s.State == ServerFree {
			free++
		}
	}
	if free != 2 {
		t.Fatalf("%d servers free after a retried request for 2 of 4, want 2", free)
	}
}

func TestReturnRevokesAndFrees(t *testing.T) {
	f := newFixture(t, 1)
	l, b := leaseAndBoot(t, f)
	if _, err := enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t); err != nil {
		t.Fatal(err)
	}
	got, _ := f.m.Lease(context.Background(), l.ID)
	if _, err := f.m.ReturnLease(context.Background(), l.ID); err != nil {
		t.Fatal(err)
	}
	der, err := f.m.CRL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	crl, _ := x509.ParseRevocationList(der)
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Text(16) != got.Servers[0].CertSerial {
		t.Fatalf("CRL lists %v, want serial %s", crl.RevokedCertificateEntries, got.Servers[0].CertSerial)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		srv, _ := f.m.Servers(context.Background())
		if srv[0].State == ServerFree {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s is %s after return, want free", srv[0].MAC, srv[0].State)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The lease request's tunnel timers and tunnel pool (which the server
// guards) reach the server with its enrollment.
func TestEnrollPassesTheLeasesTunnelTimersAndPool(t *testing.T) {
	f := newFixture(t, 1)
	req := leaseReq("key-00000002", 1)
	req.Tunnel = &api.TunnelTimers{DPDSeconds: 5}
	req.TunnelPool = "10.52.8.0/24"
	l, err := f.m.RequestLease(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := f.m.BootFor(l.Servers[0].MAC)
	if !ok {
		t.Fatal("no boot parameters")
	}
	resp, err := enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Tunnel == nil || *resp.Tunnel != *req.Tunnel {
		t.Fatalf("enrollment answer tunnel %+v; want the lease's %+v", resp.Tunnel, req.Tunnel)
	}
	if resp.TunnelPool != req.TunnelPool {
		t.Fatalf("enrollment answer tunnel_pool %q; want the lease's %q", resp.TunnelPool, req.TunnelPool)
	}
}

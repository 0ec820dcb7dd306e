package keeper

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"ferry/api"
	"ferry/lender"
	"ferry/lender/lendertest"
	"ferry/lenderca"
	"ferry/pki"
)

// lentLease is a real lender manager behind its agent API on loopback
// TLS, with one server leased for an hour and enrolled: what the keeper
// holds (key, certificate) and where it renews.
type lentLease struct {
	m       *lender.Manager
	srv     *httptest.Server
	url     string
	pin     string
	ca      *lenderca.CA
	leaseID string
	key     crypto.Signer
	cert    *x509.Certificate
}

func newLentLease(t *testing.T) *lentLease {
	t.Helper()
	a := lendertest.NewAgent(t)
	l := &lentLease{m: a.M, srv: a.Srv, url: a.URL, ca: a.CA}
	ctx := t.Context()
	for _, mac := range lentMACs {
		if _, err := l.m.AddServer(ctx, lender.Server{MAC: mac, Power: "manual", Pool: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	borrowerCA, err := pki.NewCA("borrower", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := l.m.RequestLease(ctx, api.LeaseRequest{IdempotencyKey: "keeper-renew-1", Count: len(lentMACs), Gateway: "10.50.0.2:500",
		BorrowerCA: string(borrowerCA.CertPEM()), DurationSeconds: 3600,
		Image: api.Image{Kernel: api.Artifact{URL: "https://10.50.2.1/b1/vmlinuz", SHA256: strings.Repeat("a", 64)},
			Initrd: api.Artifact{URL: "https://10.50.2.1/b1/initrd.img", SHA256: strings.Repeat("b", 64)}},
		Roots: []api.NFSRoot{{Server: "10.50.2.2", Path: "/roots/s1"}, {Server: "10.50.2.2", Path: "/roots/s2"}}})
	if err != nil {
		t.Fatal(err)
	}
	l.leaseID = lease.ID
	l.key, l.cert = l.enroll(t, lentMACs[0])
	return l
}

// lentMACs are the leased servers: the keeper's first, another second.
var lentMACs = []string{"52:54:00:50:00:07", "52:54:00:50:00:08"}

// enroll is image A's enrollment of the server with mac.
func (l *lentLease) enroll(t *testing.T, mac string) (crypto.Signer, *x509.Certificate) {
	t.Helper()
	b, ok := l.m.BootFor(mac)
	if !ok {
		t.Fatalf("no boot for the leased server %s", mac)
	}
	l.pin = b.CAPin
	key, csr := testCSR(t, b.LeaseID+"/"+b.ServerID)
	er, err := l.m.Enroll(t.Context(), netip.MustParseAddr("10.50.0.1"), api.EnrollRequest{Token: b.Token, MAC: mac, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCertsPEM([]byte(er.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	return key, certs[0]
}

// extend lengthens the lease by d, as `ferry borrower lease extend` does.
func (l *lentLease) extend(t *testing.T, d time.Duration) time.Time {
	t.Helper()
	until := l.cert.NotAfter.Add(d).Truncate(time.Second)
	if _, err := l.m.ExtendLeaseOf(t.Context(), lender.DefaultBorrower, l.leaseID, until); err != nil {
		t.Fatal(err)
	}
	return until
}

func testCSR(t *testing.T, cn string) (crypto.Signer, string) {
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

// installed records what a renewer put into use.
type installed struct{ chains [][]*x509.Certificate }

func (in *installed) install(c []*x509.Certificate) error {
	in.chains = append(in.chains, c)
	return nil
}

func testRenewer(t *testing.T, l *lentLease, url string) (*renewer, *installed) {
	t.Helper()
	in := &installed{}
	r, err := newRenewer(Renewal{LenderURL: url, Pin: l.pin}, []*x509.Certificate{l.cert}, l.key, in.install, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r, in
}

// Before an extension the lender's newest certificate is ours: nothing
// changes. After it, the keeper takes the renewed one: same key and
// subject, the new end; status says so.
func TestRenewalPicksUpTheCertificateOfAnExtendedLease(t *testing.T) {
	l := newLentLease(t)
	r, in := testRenewer(t, l, l.url)
	if changed, err := r.once(t.Context()); err != nil || changed || len(in.chains) != 0 {
		t.Fatalf("renewal before any extension: changed %v, %v, installed %d; want unchanged", changed, err, len(in.chains))
	}
	if st := r.Status(); st.LastRenewalResult != "unchanged" || st.Renewals != 0 {
		t.Fatalf("status before an extension: %+v", st)
	}
	until := l.extend(t, 48*time.Hour)
	changed, err := r.once(t.Context())
	if err != nil || !changed || len(in.chains) != 1 {
		t.Fatalf("renewal after the extension: changed %v, %v, installed %d; want the renewed certificate", changed, err, len(in.chains))
	}
	got := in.chains[0][0]
	if !got.NotAfter.Equal(until) || string(got.RawSubjectPublicKeyInfo) != string(l.cert.RawSubjectPublicKeyInfo) ||
		got.Subject.CommonName != l.cert.Subject.CommonName || got.SerialNumber.Cmp(l.cert.SerialNumber) == 0 {
		t.Fatalf("installed certificate %q serial %x until %s; want our key and CN, a new serial, until %s",
			got.Subject, got.SerialNumber, got.NotAfter, until)
	}
	st := r.Status()
	if st.LastRenewalResult != "renewed" || st.Renewals != 1 || st.NotAfter != until.UTC().Format(time.RFC3339) ||
		st.Serial != got.SerialNumber.Text(16) {
		t.Fatalf("status after the renewal: %+v", st)
	}
	// Asked again, the lender answers the certificate we now hold; it
	// authenticated us (the renewed one is presented from now on).
	if changed, err := r.once(t.Context()); err != nil || changed {
		t.Fatalf("renewal with the newest certificate: changed %v, %v", changed, err)
	}
}

// A lender that answers a certificate for another key, or one not signed
// by the pinned lender CA, is refused: the keeper keeps its certificate
// and says why in the status.
func TestRenewalRefusesAnotherKeyOrAnotherCA(t *testing.T) {
	l := newLentLease(t)
	// Another key: the other server's certificate, from the real lender
	// CA, for the same lease and ending later once the lease is extended.
	_, otherKeyCert := l.enroll(t, lentMACs[1])
	// Our key, signed by another CA with the same name as the lender's.
	rogue, err := pki.NewCA(l.ca.Cert.Subject.CommonName, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherCACert := signLike(t, l.cert, l.key.Public(), rogue.Cert, rogue.Key)
	for _, tc := range []struct {
		name, want string
		cert       *x509.Certificate
	}{
		{"another key", "another key", otherKeyCert},
		{"another CA", "not signed by the pinned lender CA", otherCACert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The real lender behind the pinned TLS; its answer swapped.
			front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != api.PathCert || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
					http.Error(w, "no", http.StatusUnauthorized)
					return
				}
				json.NewEncoder(w).Encode(api.CertResponse{
					Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.cert.Raw})), NotAfter: tc.cert.NotAfter})
			}))
			front.TLS = l.srv.TLS
			front.StartTLS()
			defer front.Close()
			r, in := testRenewer(t, l, front.URL)
			changed, err := r.once(t.Context())
			if err == nil || changed || len(in.chains) != 0 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("renewal offered %s: changed %v, %v, installed %d; want a refusal saying %q", tc.name, changed, err, len(in.chains), tc.want)
			}
			if st := r.Status(); st.Serial != l.cert.SerialNumber.Text(16) || !strings.Contains(st.LastRenewalResult, tc.want) {
				t.Fatalf("status after the refusal: %+v", st)
			}
		})
	}
}

// signLike issues a copy of tmpl (subject, a later end) for pub, signed
// by the given CA.
func signLike(t *testing.T, tmpl *x509.Certificate, pub crypto.PublicKey, ca *x509.Certificate, caKey crypto.Signer) *x509.Certificate {
	t.Helper()
	c := *tmpl
	c.SerialNumber = new(big.Int).Add(tmpl.SerialNumber, big.NewInt(1))
	c.NotAfter = tmpl.NotAfter.Add(24 * time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, &c, ca, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	out, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRenewMargin(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		validity, want time.Duration
	}{
		{2 * time.Hour, time.Hour},
		{30 * 24 * time.Hour, 3 * 24 * time.Hour},
	} {
		c := &x509.Certificate{NotBefore: now, NotAfter: now.Add(tc.validity)}
		if got := renewMargin(c); got != tc.want {
			t.Errorf("renewal margin of a %s certificate: %s, want %s", tc.validity, got, tc.want)
		}
	}
}

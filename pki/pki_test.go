package pki

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newCA(t testing.TB, cn string) *CA {
	t.Helper()
	ca, err := NewCA(cn, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestCSRCarriesIdentity(t *testing.T) {
	for _, alg := range []Algorithm{ECDSAP256, Ed25519} {
		key, err := GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		id := Identity{CommonName: "lease-42", DNSNames: []string{"node7.example"}, IPs: []net.IP{net.ParseIP("10.33.0.7")}}
		p, err := CreateCSR(key, id)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := ParseCSRPEM(p)
		if err != nil {
			t.Fatal(err)
		}
		if csr.Subject.CommonName != "lease-42" || csr.DNSNames[0] != "node7.example" || !csr.IPAddresses[0].Equal(id.IPs[0]) {
			t.Errorf("%s: CSR names %v %v %v, want the identity given", alg, csr.Subject, csr.DNSNames, csr.IPAddresses)
		}
		if alg == Ed25519 {
			if _, ok := csr.PublicKey.(ed25519.PublicKey); !ok {
				t.Errorf("ed25519 CSR holds %T", csr.PublicKey)
			}
		}
	}
}

func TestCSRRefusesEmptyIdentity(t *testing.T) {
	key, _ := GenerateKey(ECDSAP256)
	if _, err := CreateCSR(key, Identity{}); err == nil {
		t.Fatal("CSR with no name was made")
	}
}

func TestVerifyAcceptsChainAndNamesPeer(t *testing.T) {
	ca := newCA(t, "lender CA")
	key, cert, err := ca.Issue(Identity{CommonName: "lease-1", DNSNames: []string{"a.example"}}, ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Roots: ca.Pool()}
	p, err := v.Verify([]*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := Pin(key.Public())
	if p.Subject != "CN=lease-1" || p.Pin != pin || p.DNSNames[0] != "a.example" {
		t.Errorf("peer = %q pin %s, want CN=lease-1 pin %s", p.Subject, p.Pin, pin)
	}
}

func TestVerifyRefusesOtherCA(t *testing.T) {
	ca, other := newCA(t, "lender CA"), newCA(t, "other CA")
	_, cert, _ := other.Issue(Identity{CommonName: "x"}, ECDSAP256, time.Hour)
	_, err := (&Verifier{Roots: ca.Pool()}).Verify([]*x509.Certificate{cert})
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("err = %v, want ErrUntrusted", err)
	}
}

func TestVerifyRefusesExpiredBeyondSkew(t *testing.T) {
	ca := newCA(t, "lender CA")
	_, cert, _ := ca.Issue(Identity{CommonName: "x"}, ECDSAP256, time.Hour)
	late := cert.NotAfter.Add(10 * time.Minute)
	v := &Verifier{Roots: ca.Pool(), Skew: 5 * time.Minute, Now: func() time.Time { return late }}
	if _, err := v.Verify([]*x509.Certificate{cert}); !errors.Is(err, ErrExpired) {
		t.Fatalf("err = %v, want ErrExpired", err)
	}
	v.Skew = 15 * time.Minute
	if _, err := v.Verify([]*x509.Certificate{cert}); err != nil {
		t.Fatalf("within skew: %v", err)
	}
}

func TestVerifyRefusesNotYetValid(t *testing.T) {
	ca := newCA(t, "lender CA")
	_, cert, _ := ca.Issue(Identity{CommonName: "x"}, ECDSAP256, time.Hour)
	early := cert.NotBefore.Add(-time.Hour)
	v := &Verifier{Roots: ca.Pool(), Skew: time.Minute, Now: func() time.Time { return early }}
	if _, err := v.Verify([]*x509.Certificate{cert}); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("err = %v, want ErrNotYetValid", err)
	}
}

func TestVerifyRefusesCertWithoutSignatureUsage(t *testing.T) {
	ca := newCA(t, "lender CA")
	// The CA itself has CertSign; a leaf with only KeyEncipherment must go.
	key, _ := GenerateKey(ECDSAP256)
	p, _ := CreateCSR(key, Identity{CommonName: "enc-only"})
	csr, _ := ParseCSRPEM(p)
	cert, err := ca.Sign(csr, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cert.KeyUsage = x509.KeyUsageKeyEncipherment
	if _, err := (&Verifier{Roots: ca.Pool()}).Verify([]*x509.Certificate{cert}); !errors.Is(err, ErrKeyUsage) {
		t.Fatalf("err = %v, want ErrKeyUsage", err)
	}
}

func TestWriteSecretFileRefusesDiskAndOverwrite(t *testing.T) {
	dir := t.TempDir()
	mem, _, err := inMemoryFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "key.pem")
	err = WriteSecretFile(path, []byte("secret"), false)
	if mem {
		if err != nil {
			t.Fatal(err)
		}
	} else if !errors.Is(err, ErrOnDisk) {
		t.Fatalf("write to %s (disk): err = %v, want ErrOnDisk", dir, err)
	}
	if err := WriteSecretFile(path+"2", []byte("secret"), true); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path + "2")
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	if err := WriteSecretFile(path+"2", []byte("other"), true); err == nil {
		t.Fatal("existing key file was overwritten")
	}
	if b, _ := os.ReadFile(path + "2"); string(b) != "secret" {
		t.Errorf("key file content changed to %q", b)
	}
}

func TestWriteSecretFileAcceptsTmpfs(t *testing.T) {
	if mem, _, _ := inMemoryFS("/dev/shm"); !mem {
		t.Skip("/dev/shm is not tmpfs here")
	}
	dir, err := os.MkdirTemp("/dev/shm", "pki-test")
	if err != nil {
		t.Skip(err)
	}
	defer os.RemoveAll(dir)
	if err := WriteSecretFile(filepath.Join(dir, "k"), []byte("x"), false); err != nil {
		t.Fatal(err)
	}
}

func TestParseCertsPEMRefusesKeyBlock(t *testing.T) {
	key, _ := GenerateKey(ECDSAP256)
	p, _ := MarshalKeyPEM(key)
	_, err := ParseCertsPEM(p)
	if err == nil || !strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("err = %v, want a refusal naming the block type", err)
	}
	k2, err := ParseKeyPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Pin(key.Public())
	b, _ := Pin(k2.Public())
	if a != b {
		t.Error("key changed through PEM")
	}
}

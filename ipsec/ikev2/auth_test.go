package ikev2

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net/netip"
	"testing"
	"time"
)

// certKey returns the public key as a peer sees it: from a certificate.
func certKey(t *testing.T, key crypto.Signer) crypto.PublicKey {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lease-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c.PublicKey
}

func TestAuthSignatureVerifiesWithCertificateKeyOnly(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	prf, _ := NewPRF(PRF_HMAC_SHA2_256)
	id := &ID{IDType: IDFQDN, Data: []byte("server-1.lease.example")}
	octets := SignedOctets(prf, []byte("IKE_SA_INIT request"), make([]byte, 32), []byte("SK_pi"), id)
	for name, key := range map[string]crypto.Signer{"ecdsa-p256": ec, "ed25519": ed} {
		t.Run(name, func(t *testing.T) {
			a, err := SignAuth(key, octets, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			pub := certKey(t, key)
			if err := VerifyAuth(pub, a, octets); err != nil {
				t.Fatal(err)
			}
			otherID := &ID{IDType: IDFQDN, Data: []byte("server-2.lease.example")}
			if err := VerifyAuth(pub, a, SignedOctets(prf, []byte("IKE_SA_INIT request"), make([]byte, 32), []byte("SK_pi"), otherID)); !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("signature over another ID accepted: %v", err)
			}
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err := VerifyAuth(other.Public(), a, octets); !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("another key accepted: %v", err)
			}
			a.Data[0] = 200
			if err := VerifyAuth(pub, a, octets); !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("bad AlgorithmIdentifier length accepted: %v", err)
			}
		})
	}
}

func TestAuthRefusesP384Keys(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := SignAuth(k, []byte("x"), rand.Reader); err == nil {
		t.Fatal("P-384 signing accepted")
	}
}

func TestNATDetectionHashMatchesIndependentComputation(t *testing.T) {
	x := loadXcheck(t)
	got := NATDetectionHash(0x0102030405060708, 0, netip.MustParseAddrPort("192.0.2.1:500"))
	if hexs := hex.EncodeToString(got); hexs != x.NATHash {
		t.Fatalf("NAT-D hash = %s, want %s", hexs, x.NATHash)
	}
	mapped := NATDetectionHash(0x0102030405060708, 0, netip.MustParseAddrPort("[::ffff:192.0.2.1]:500"))
	if hex.EncodeToString(mapped) != x.NATHash {
		t.Fatal("v4-mapped address hashed differently from the IPv4 address")
	}
}

func TestCookieAcceptedAcrossOneRotationOnly(t *testing.T) {
	ni := make([]byte, 32)
	ip := netip.MustParseAddr("10.31.0.2")
	s1 := CookieSecret{Version: 1, Key: []byte("secret one")}
	s2 := CookieSecret{Version: 2, Key: []byte("secret two")}
	s3 := CookieSecret{Version: 3, Key: []byte("secret three")}
	c := s1.Cookie(ni, ip, 42)
	if !CheckCookie(c, ni, ip, 42, s2, s1) {
		t.Fatal("cookie of the previous secret refused")
	}
	if CheckCookie(c, ni, ip, 42, s3, s2) {
		t.Fatal("cookie of a retired secret accepted")
	}
	if CheckCookie(c, ni, netip.MustParseAddr("10.31.0.3"), 42, s1) || CheckCookie(c, ni, ip, 43, s1) {
		t.Fatal("cookie accepted for another address or SPI")
	}
}

package lenderca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"strings"

	"ferry/api"
	"time"
)

// MaxCSR bounds the PEM of a CSR before parsing.
const MaxCSR = 8 << 10

// Subject is what a lease allows a server's certificate to name.
type Subject struct {
	LeaseID  string
	ServerID string
}

// CommonName is the only CN a CSR for this server may carry.
func (s Subject) CommonName() string { return s.LeaseID + "/" + s.ServerID }

// URI is the SAN naming the lease: ferry:lease/ID/server/ID.
func (s Subject) URI() *url.URL {
	return &url.URL{Scheme: "ferry", Opaque: "lease/" + s.LeaseID + "/server/" + s.ServerID}
}

func fieldErr(field, format string, a ...any) error {
	return &api.FieldError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// ParseURI reads a ferry:lease/ID/server/ID URI.
func ParseURI(u *url.URL) (Subject, bool) {
	parts := strings.Split(u.Opaque, "/")
	if u.Scheme != "ferry" || len(parts) != 4 || parts[0] != "lease" || parts[2] != "server" || parts[1] == "" || parts[3] == "" {
		return Subject{}, false
	}
	return Subject{LeaseID: parts[1], ServerID: parts[3]}, true
}

// CheckCSR parses a PEM CSR, verifies its signature and refuses keys other
// than ECDSA P-256 and Ed25519 and subjects other than want's.
func CheckCSR(csrPEM []byte, want Subject) (*x509.CertificateRequest, error) {
	if len(csrPEM) > MaxCSR {
		return nil, fieldErr("csr_pem", "%d bytes, over %d", len(csrPEM), MaxCSR)
	}
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, fieldErr("csr_pem", "no CERTIFICATE REQUEST PEM block")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fieldErr("csr_pem", "%v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fieldErr("csr_pem", "signature: %v", err)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if csr.Subject.CommonName != want.CommonName() {
		return nil, fieldErr("csr_pem.subject", "CN %q, the lease allows only %q", csr.Subject.CommonName, want.CommonName())
	}
	if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses) > 0 {
		return nil, fieldErr("csr_pem.subject", "alternative names are not allowed; the lender sets them")
	}
	return csr, nil
}

func checkKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fieldErr("csr_pem.key", "ECDSA curve %s, want P-256", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fieldErr("csr_pem.key", "%T, want ECDSA P-256 or Ed25519", pub)
	}
	return nil
}

// Issued is a signed one-time certificate.
type Issued struct {
	DER     []byte
	Serial  string // hex
	SPKIPin string // SHA-256 of SubjectPublicKeyInfo, hex
}

// Sign issues the certificate for a checked CSR: it names the lease in a
// SAN URI and is valid until notAfter (the lease's end).
func (ca *CA) Sign(csr *x509.CertificateRequest, s Subject, now, notAfter time.Time) (Issued, error) {
	serial := randSerial()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: s.CommonName(), Organization: []string{"ferry lease"}},
		URIs:         []*url.URL{s.URI()},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.key)
	if err != nil {
		return Issued{}, fmt.Errorf("lenderca: sign %s: %w", s.CommonName(), err)
	}
	return Issued{DER: der, Serial: serial.Text(16), SPKIPin: SPKIPin(csr.RawSubjectPublicKeyInfo)}, nil
}

// SPKIPin is the hex SHA-256 of a DER SubjectPublicKeyInfo.
func SPKIPin(spki []byte) string {
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:])
}

// Revoked is one CRL entry.
type Revoked struct {
	Serial string
	At     time.Time
}

// CRL signs a revocation list of the given entries, numbered number.
func (ca *CA) CRL(entries []Revoked, number int64, now time.Time) ([]byte, error) {
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(number),
		ThisUpdate: now,
		NextUpdate: now.Add(time.Hour),
	}
	for _, e := range entries {
		n, ok := new(big.Int).SetString(e.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("lenderca: CRL entry serial %q is not hex", e.Serial)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: n, RevocationTime: e.At})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("lenderca: sign CRL: %w", err)
	}
	return der, nil
}

package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Usage is what a site certificate is for: it sets the extended key usage,
// so that a certificate made for one role cannot stand in for another.
type Usage string

// The usages of a site's certificates.
const (
	UsageServer Usage = "server" // TLS server: the lender's m2m listener, the images server
	UsageClient Usage = "client" // TLS client: the borrower's m2m client, the keeper client
	UsageIKE    Usage = "ike"    // IKE signatures: the gateway (no extended key usage, as strongSwan expects)
)

// ParseUsage reads "server", "client" or "ike".
func ParseUsage(s string) (Usage, error) {
	switch u := Usage(s); u {
	case UsageServer, UsageClient, UsageIKE:
		return u, nil
	}
	return "", fmt.Errorf("pki: usage %q: want server, client or ike", s)
}

// NewOrgCA makes an organisation's CA: ECDSA P-256, common name
// "NAME CA", valid for validity from an hour ago.
func NewOrgCA(name string, validity time.Duration) (*CA, error) {
	return NewCA(name+" CA", validity)
}

// LoadCA reads a CA certificate and its key (PEM), as a site that keeps
// its own PKI gives them: the certificate must be a CA that may sign
// certificates, and the key must be its.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := ParseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	c := certs[0]
	if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: %q is not a CA that may sign certificates (basicConstraints CA:TRUE, keyUsage keyCertSign)", c.Subject.CommonName)
	}
	if !KeyMatches(c, key) {
		return nil, fmt.Errorf("pki: the CA key is not the key of %q", c.Subject.CommonName)
	}
	return &CA{Cert: c, Key: key}, nil
}

// KeyMatches reports whether key is the private half of cert's public key.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	a, err1 := x509.MarshalPKIXPublicKey(cert.PublicKey)
	b, err2 := x509.MarshalPKIXPublicKey(key.Public())
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// IssueSite makes a P-256 key and a certificate for cn and hosts (IP
// addresses or DNS names) for usage, valid for validity from an hour ago.
func (ca *CA) IssueSite(cn string, hosts []string, usage Usage, validity time.Duration) (crypto.Signer, *x509.Certificate, error) {
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter // no certificate outlives its CA
	}
	switch usage {
	case UsageServer:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case UsageClient:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case UsageIKE:
	default:
		return nil, nil, fmt.Errorf("pki: usage %q: want server, client or ike", usage)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if usage == UsageServer && len(tmpl.IPAddresses)+len(tmpl.DNSNames) == 0 {
		return nil, nil, fmt.Errorf("pki: server certificate %q: give the addresses or names clients reach it by", cn)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: CA %q sign %q: %w", ca.Cert.Subject.CommonName, cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

// ExpirySoon is how close to its end a certificate is worth a warning.
const ExpirySoon = 30 * 24 * time.Hour

// CheckPair reads a certificate and key file and checks that they belong
// together, that the certificate is valid now and (when roots is not nil)
// chains to roots for usage. It returns warnings for what still works:
// an end within ExpirySoon, a key file others may read.
func CheckPair(certFile, keyFile string, usage Usage, roots *x509.CertPool, now time.Time) (*x509.Certificate, []string, error) {
	certs, err := LoadCertsFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	key, err := LoadKeyFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	leaf := certs[0]
	var warn []string
	if !KeyMatches(leaf, key) {
		return leaf, nil, fmt.Errorf("pki: %s is not the key of %s (%q)", keyFile, certFile, leaf.Subject.CommonName)
	}
	if fi, err := os.Stat(keyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		warn = append(warn, fmt.Sprintf("%s: mode %04o: others may read this private key; want 0600", keyFile, fi.Mode().Perm()))
	}
	w, err := CheckValidity(leaf, now)
	if err != nil {
		return leaf, warn, fmt.Errorf("%s: %w", certFile, err)
	}
	warn = append(warn, w...)
	if roots != nil {
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
		switch usage {
		case UsageServer:
			opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		case UsageClient:
			opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		if _, err := leaf.Verify(opts); err != nil {
			return leaf, warn, fmt.Errorf("pki: %s (%q) as a %s certificate: %w", certFile, leaf.Subject.CommonName, usage, err)
		}
	}
	return leaf, warn, nil
}

// CheckValidity refuses a certificate outside its validity window and
// warns when its end is within ExpirySoon.
func CheckValidity(c *x509.Certificate, now time.Time) ([]string, error) {
	switch {
	case now.Before(c.NotBefore):
		return nil, fmt.Errorf("pki: %q is not valid before %s (is the clock right?)", c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
	case now.After(c.NotAfter):
		return nil, fmt.Errorf("pki: %q expired on %s", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	case c.NotAfter.Sub(now) < ExpirySoon:
		return []string{fmt.Sprintf("%q expires on %s, in %d days", c.Subject.CommonName,
			c.NotAfter.UTC().Format(time.RFC3339), int(c.NotAfter.Sub(now).Hours()/24))}, nil
	}
	return nil, nil
}

// CheckCAFile reads a file of CA certificates, each of which must be a
// CA valid now; it warns on ends within ExpirySoon.
func CheckCAFile(path string, now time.Time) ([]*x509.Certificate, []string, error) {
	certs, err := LoadCertsFile(path)
	if err != nil {
		return nil, nil, err
	}
	var warn []string
	var errs []error
	for _, c := range certs {
		if !c.IsCA {
			errs = append(errs, fmt.Errorf("%s: %q is not a CA certificate", path, c.Subject.CommonName))
			continue
		}
		w, err := CheckValidity(c, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
		for _, s := range w {
			warn = append(warn, path+": "+s)
		}
	}
	return certs, warn, errors.Join(errs...)
}

// Describe is a certificate as `ferry pki show` prints it: one "key value"
// line each, no secret in it.
func Describe(c *x509.Certificate) string {
	var b strings.Builder
	fp := sha256.Sum256(c.Raw)
	pin, _ := Pin(c.PublicKey)
	fmt.Fprintf(&b, "subject      %s\n", c.Subject)
	fmt.Fprintf(&b, "issuer       %s\n", c.Issuer)
	fmt.Fprintf(&b, "serial       %x\n", c.SerialNumber)
	fmt.Fprintf(&b, "not_before   %s\n", c.NotBefore.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "not_after    %s\n", c.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "ca           %t\n", c.IsCA)
	var usage []string
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			usage = append(usage, "server")
		case x509.ExtKeyUsageClientAuth:
			usage = append(usage, "client")
		default:
			usage = append(usage, fmt.Sprint(u))
		}
	}
	if len(usage) == 0 {
		usage = []string{"any"}
	}
	fmt.Fprintf(&b, "usage        %s\n", strings.Join(usage, ","))
	var names []string
	for _, ip := range c.IPAddresses {
		names = append(names, "IP:"+ip.String())
	}
	for _, d := range c.DNSNames {
		names = append(names, "DNS:"+d)
	}
	for _, u := range c.URIs {
		names = append(names, "URI:"+u.String())
	}
	if len(names) > 0 {
		fmt.Fprintf(&b, "names        %s\n", strings.Join(names, ","))
	}
	fmt.Fprintf(&b, "sha256       %s\n", hex.EncodeToString(fp[:]))
	fmt.Fprintf(&b, "spki_sha256  %s\n", pin)
	return b.String()
}

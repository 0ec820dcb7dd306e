package lender

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"ferry/api"
	"ferry/configfile"
	"ferry/internal/atomicfile"
	"ferry/lenderca"
	"ferry/pki"
)

// DefaultBorrower is the borrower m2m_client_ca configures (the one
// borrower of configurations older than "borrowers"); it also owns the
// leases stored before leases had owners.
const DefaultBorrower = "default"

// BorrowerConfig is one borrower organisation the m2m listener admits.
// Its name owns the leases its managers make. A client certificate is
// this borrower's when it chains to CA (for client authentication) and,
// when given, has this SPKI pin and this subject common name.
type BorrowerConfig struct {
	Name string `json:"name"`
	CA   string `json:"ca"`
	SPKI string `json:"spki_sha256,omitempty"`
	CN   string `json:"cn,omitempty"`
}

var borrowerName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// borrower is a loaded BorrowerConfig.
type borrower struct {
	BorrowerConfig
	roots *x509.CertPool
	cas   []*x509.Certificate
}

// Borrowers identifies the borrower managers that call the m2m listener.
type Borrowers struct {
	list []borrower
}

// borrowerConfigs is the configured list: m2m_client_ca as the borrower
// "default" in front, then borrowers, then those of borrowers_dir.
func (c Config) borrowerConfigs() []BorrowerConfig {
	var out []BorrowerConfig
	for _, f := range c.borrowerFields() {
		out = append(out, f.b)
	}
	return out
}

type borrowerField struct {
	field string // where the operator set it
	b     BorrowerConfig
}

func (c Config) borrowerFields() []borrowerField {
	var out []borrowerField
	if c.M2MClientCA != "" {
		out = append(out, borrowerField{"m2m_client_ca", BorrowerConfig{Name: DefaultBorrower, CA: c.M2MClientCA}})
	}
	for i, b := range c.Borrowers {
		out = append(out, borrowerField{fmt.Sprintf("borrowers[%d]", i), b})
	}
	for _, b := range c.dirBorrowers {
		out = append(out, borrowerField{"borrowers_dir/" + filepath.Base(b.CA), b})
	}
	return out
}

// checkBorrowers records what can be checked without reading files.
func (c Config) checkBorrowers(r *configfile.Report) {
	bs := c.borrowerFields()
	if len(bs) == 0 {
		r.Errorf("borrowers", nil, "no borrower: add one with `ferry lender borrower add NAME CA.pem` (borrowers_dir), list them under borrowers, or set m2m_client_ca")
		return
	}
	seen := map[string]bool{}
	for _, bf := range bs {
		field, b := bf.field, bf.b
		if !borrowerName.MatchString(b.Name) {
			r.Errorf(field+".name", b.Name, "want 1-63 of a-z 0-9 . _ - (starting with a letter or digit)")
		} else if seen[b.Name] {
			r.Errorf(field+".name", b.Name, "listed twice (m2m_client_ca is the borrower %q)", DefaultBorrower)
		}
		if b.CA == "" {
			r.Errorf(field+".ca", b.CA, "empty: name the PEM file of the CA its client certificates chain to")
		}
		if b.SPKI != "" && !isHex32(b.SPKI) {
			r.Errorf(field+".spki_sha256", b.SPKI, "want 64 lower-case hex digits (SHA-256 of the client key's SubjectPublicKeyInfo)")
		}
		seen[b.Name] = true
	}
}

func isHex32(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32 && s == strings.ToLower(s)
}

// LoadBorrowers reads every borrower's CA. Two borrowers that trust a
// common CA must each be narrowed by cn or spki_sha256, or one client
// certificate could be both.
func LoadBorrowers(c Config, log *slog.Logger) (*Borrowers, error) {
	r := &configfile.Report{Name: "lender config"}
	c.checkBorrowers(r)
	if err := r.Err(); err != nil {
		return nil, err
	}
	out := &Borrowers{}
	for _, bc := range c.borrowerConfigs() {
		cas, err := pki.LoadCertsFile(bc.CA)
		if err != nil {
			return nil, fmt.Errorf("borrower %q: ca: %w", bc.Name, err)
		}
		b := borrower{BorrowerConfig: bc, roots: x509.NewCertPool(), cas: cas}
		for _, ca := range cas {
			b.roots.AddCert(ca)
		}
		if bc.Name == DefaultBorrower && c.M2MClientCA != "" && len(cas) > 1 {
			log.Warn("m2m_client_ca holds several CAs: every client of any of them is the one borrower \"default\" and sees its leases; list each organisation under borrowers to keep their leases apart",
				"file", bc.CA, "cas", len(cas))
		}
		for _, o := range out.list {
			if sharesCA(o.cas, cas) && (o.narrow() == "" || b.narrow() == "" || o.narrow() == b.narrow()) {
				return nil, fmt.Errorf("borrowers %q and %q trust a common CA: give each its own cn or spki_sha256", o.Name, b.Name)
			}
		}
		out.list = append(out.list, b)
	}
	return out, nil
}

// narrow is what, besides the CA, a certificate must show to be b's.
func (b borrower) narrow() string {
	if b.SPKI == "" && b.CN == "" {
		return ""
	}
	return b.SPKI + "/" + b.CN
}

func sharesCA(a, b []*x509.Certificate) bool {
	for _, x := range a {
		for _, y := range b {
			if bytes.Equal(x.Raw, y.Raw) {
				return true
			}
		}
	}
	return false
}

// Identify names the borrower whose CA (and pin, and CN) a presented
// client chain satisfies; exactly one must.
func (bs *Borrowers) Identify(chain []*x509.Certificate) (string, error) {
	if len(chain) == 0 {
		return "", errors.New("no client certificate")
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	var match []string
	for _, b := range bs.list {
		if b.SPKI != "" && lenderca.SPKIPin(leaf.RawSubjectPublicKeyInfo) != b.SPKI {
			continue
		}
		if b.CN != "" && leaf.Subject.CommonName != b.CN {
			continue
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: b.roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err == nil {
			match = append(match, b.Name)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("client certificate %q (issuer %q) is no configured borrower's", leaf.Subject.CommonName, leaf.Issuer.CommonName)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("client certificate %q is borrowers %v at once: narrow them by cn or spki_sha256", leaf.Subject.CommonName, match)
}

// TLS is the m2m listener's configuration: TLS 1.3, the lender's key pair,
// and a client certificate that is exactly one borrower's, checked in the
// handshake (the handlers identify it again from the same chain).
func (bs *Borrowers) TLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("m2m key pair cert=%s key=%s: %w", certFile, keyFile, err)
	}
	hint := x509.NewCertPool() // the CAs the client is told to choose from
	for _, b := range bs.list {
		for _, ca := range b.cas {
			hint.AddCert(ca)
		}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    hint,
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := bs.Identify(cs.PeerCertificates)
			return err
		},
	}, nil
}

// owner is who asks the lease API: a borrower's name, or the operator on
// the admin socket, who sees every lease.
type owner struct {
	name     string
	operator bool
}

// operator is the local CLI; the leases it makes belong to DefaultBorrower.
var operator = owner{name: DefaultBorrower, operator: true}

// source names o in an event history.
func (o owner) source() string {
	if o.operator {
		return "operator"
	}
	return "borrower " + o.name
}

func (o owner) owns(rec leaseRec) bool { return o.operator || o.name == rec.owner() }

// owner is the borrower a stored lease belongs to: DefaultBorrower for
// leases stored before leases had owners.
func (rec leaseRec) owner() string {
	if rec.Owner == "" {
		return DefaultBorrower
	}
	return rec.Owner
}

// borrowerOf identifies the caller of an m2m request.
func (bs *Borrowers) borrowerOf(r *http.Request) (owner, error) {
	if r.TLS == nil {
		return owner{}, errors.New("no TLS")
	}
	name, err := bs.Identify(r.TLS.PeerCertificates)
	return owner{name: name}, err
}

// forbidden answers a caller that is no borrower.
func forbidden(w http.ResponseWriter, err error) {
	api.WriteJSON(w, http.StatusForbidden, api.Error{Field: "certificate", Reason: err.Error()})
}

// AdmitBorrower writes ca (a PEM file of CA certificates) into dir as
// NAME.pem, all or nothing, refusing to replace one unless force.
func AdmitBorrower(dir, name, caFile string, force bool) (string, error) {
	if !borrowerName.MatchString(name) {
		return "", fmt.Errorf("borrower name %.80q: want 1-63 of a-z 0-9 . _ - (starting with a letter or digit)", name)
	}
	certs, err := pki.LoadCertsFile(caFile)
	if err != nil {
		return "", err
	}
	for _, c := range certs {
		if !c.IsCA {
			return "", fmt.Errorf("%s: %q is not a CA certificate: give the borrower organisation's CA (for-lender/borrower-ca.pem)", caFile, c.Subject.CommonName)
		}
	}
	path := filepath.Join(dir, name+".pem")
	if _, err := os.Lstat(path); err == nil && !force {
		return "", fmt.Errorf("%s exists: borrower %s is admitted already (--force replaces its CA)", path, name)
	}
	if err := atomicfile.Write(path, pki.CertPEM(certs...), 0o644); err != nil {
		return "", fmt.Errorf("admit borrower %s: %w", name, err)
	}
	return path, nil
}

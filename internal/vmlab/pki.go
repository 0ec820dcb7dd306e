package vmlab

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"ferry/pki"
)

// Org is one organisation's certificate authority, written as DIR/NAME-ca.pem.
type Org struct {
	CA  *pki.CA
	Dir string
	PEM string // the CA certificate's path
}

// NewOrg makes a CA named name valid for a day, written into dir.
func NewOrg(dir, name string) (*Org, error) {
	ca, err := pki.NewCA(name, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	o := &Org{CA: ca, Dir: dir, PEM: filepath.Join(dir, name+"-ca.pem")}
	if err := pki.WritePublicFile(o.PEM, ca.CertPEM()); err != nil {
		return nil, err
	}
	return o, nil
}

// Issue makes a P-256 key and a certificate (server and client use, IKE
// signatures) for name and the addresses ips, and writes DIR/NAME.pem and
// DIR/NAME.key (0600), neither replacing a file. It returns the two paths.
func (o *Org) Issue(name string, ips ...string) (cert, key string, err error) {
	id := pki.Identity{CommonName: name}
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return "", "", fmt.Errorf("issue %s: %q is not an IP address", name, s)
		}
		id.IPs = append(id.IPs, ip)
	}
	k, c, err := o.CA.Issue(id, pki.ECDSAP256, 24*time.Hour)
	if err != nil {
		return "", "", err
	}
	kp, err := pki.MarshalKeyPEM(k)
	if err != nil {
		return "", "", err
	}
	cert, key = filepath.Join(o.Dir, name+".pem"), filepath.Join(o.Dir, name+".key")
	if err := pki.WritePublicFile(cert, pki.CertPEM(c)); err != nil {
		return "", "", err
	}
	// A lab's throwaway key: the run directory is on disk.
	if err := pki.WriteSecretFile(key, kp, true); err != nil {
		return "", "", err
	}
	return cert, key, nil
}

package ike

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"

	"ferry/pki"
)

// InitiatorState is what re-opens the same tunnel with the same identity
// after kexec or from the long-lived keeper: the settings and the
// one-time credentials. Save writes it into a directory (tmpfs in the
// agent) and LoadState reads it back.
type InitiatorState struct {
	Gateway       netip.Addr     `json:"gateway"`
	Local         netip.Addr     `json:"local,omitempty"`
	RemoteSubnets []netip.Prefix `json:"remote_subnets,omitempty"`
	VirtualIP     bool           `json:"virtual_ip"`
	ForceEncap    bool           `json:"force_encap"`
	// TunnelPool is the prefix the gateway gives the lent servers their
	// virtual IPs from (the lease's tunnel_pool): the peers' addresses.
	// It is guarded like the remote subnets (keeper.OpenTunnel), so a
	// packet to another server's virtual IP goes through the tunnel when
	// a selector covers it and is dropped otherwise, never sent in clear.
	TunnelPool netip.Prefix `json:"tunnel_pool,omitzero"`
	// Timers are the DPD interval, lifetimes and rekey margin; zero
	// fields take DefaultTimers' values, the gateway's defaults too.
	Timers

	Key   crypto.Signer       `json:"-"`
	Certs []*x509.Certificate `json:"-"`
	CAs   []*x509.Certificate `json:"-"`
}

// Files of a state directory.
const (
	stateFile = "vpn.json"
	keyFile   = "key.pem"
	certFile  = "cert.pem"
	caFile    = "ca.pem"
	maxState  = 64 << 10
)

// Save writes s into dir: vpn.json, cert.pem, ca.pem and key.pem (0600).
// Existing files are refused, so that a state is never half replaced.
func (s *InitiatorState) Save(dir string, allowDisk bool) error {
	if s.Key == nil || len(s.Certs) == 0 || len(s.CAs) == 0 || !s.Gateway.IsValid() {
		return fmt.Errorf("ike: save state to %s: need gateway, key, certificate and CA", dir)
	}
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	kp, err := pki.MarshalKeyPEM(s.Key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("ike: save state: %w", err)
	}
	if err := pki.WriteSecretFile(filepath.Join(dir, keyFile), kp, allowDisk); err != nil {
		return err
	}
	for name, data := range map[string][]byte{stateFile: append(js, '\n'), certFile: pki.CertPEM(s.Certs...), caFile: pki.CertPEM(s.CAs...)} {
		if err := pki.WritePublicFile(filepath.Join(dir, name), data); err != nil {
			return err
		}
	}
	return nil
}

// LoadState reads a directory written by Save.
func LoadState(dir string) (*InitiatorState, error) {
	f, err := os.Open(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("ike: load state: %w", err)
	}
	defer f.Close()
	var s InitiatorState
	dec := json.NewDecoder(io.LimitReader(f, maxState))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("ike: load state %s: %w", f.Name(), err)
	}
	if !s.Gateway.IsValid() {
		return nil, fmt.Errorf("ike: load state %s: no gateway", f.Name())
	}
	if s.Key, err = pki.LoadKeyFile(filepath.Join(dir, keyFile)); err != nil {
		return nil, err
	}
	if s.Certs, err = pki.LoadCertsFile(filepath.Join(dir, certFile)); err != nil {
		return nil, err
	}
	if s.CAs, err = pki.LoadCertsFile(filepath.Join(dir, caFile)); err != nil {
		return nil, err
	}
	return &s, nil
}

// Target is what Connect should ask for.
func (s *InitiatorState) Target() Target {
	return Target{Gateway: s.Gateway, RemoteSubnets: s.RemoteSubnets, VirtualIP: s.VirtualIP}
}

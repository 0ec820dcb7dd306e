package borrower

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"ferry/api"
	"ferry/gatewayctl"
	"ferry/internal/atomicfile"
)

// Bounds of the CRL relay.
const (
	crlEvery = 30 * time.Second // the lender's CRL changes at returns and conflicts; the borrower's own refresh acts at once
	maxCRL   = 16 << 20
)

// relayCRL fetches the lender CA's CRL over the manager-to-manager API
// and hands it to the gateway, which then refuses every certificate it
// lists, even one whose key is still let in: ferry gateway through
// gateway_crl_file (replaced when it changed; its "crl" reloads it),
// strongSwan through VICI (load-cert x509crl). The gateway checks the
// CA's signature; here the answer is only checked to be a CRL.
func (m *Manager) relayCRL(ctx context.Context) error {
	swan, _ := m.gw.(*swanGateway)
	if m.cfg.GatewayCRLFile == "" && swan == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", m.lender.Base+api.PathCRL, nil)
	if err != nil {
		return err
	}
	resp, err := m.lender.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("lender CRL: %w", err)
	}
	defer resp.Body.Close()
	der, err := io.ReadAll(io.LimitReader(resp.Body, maxCRL+1))
	switch {
	case err != nil:
		return fmt.Errorf("lender CRL: %w", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("lender CRL: %s: %.200q", resp.Status, der)
	case len(der) > maxCRL:
		return fmt.Errorf("lender CRL: over %d bytes", maxCRL)
	}
	if _, err := x509.ParseRevocationList(der); err != nil {
		return fmt.Errorf("lender CRL: %w", err)
	}
	if swan != nil {
		// Every time: a restarted charon has forgotten it, and loading
		// the same CRL again changes nothing.
		return swan.session(ctx, func(s *gatewayctl.Swan) error { return s.LoadCRL(ctx, der) })
	}
	old, err := os.ReadFile(m.cfg.GatewayCRLFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("gateway_crl_file: %w", err)
	}
	if bytes.Equal(old, der) {
		return nil
	}
	if err := atomicfile.Write(m.cfg.GatewayCRLFile, der, 0o644); err != nil {
		return fmt.Errorf("gateway_crl_file: %w", err)
	}
	m.log.Info("lender CRL relayed to the gateway", "path", m.cfg.GatewayCRLFile, "bytes", len(der))
	return nil
}

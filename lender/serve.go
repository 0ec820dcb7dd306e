package lender

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"ferry/api"
	"ferry/configfile"
	"ferry/lenderca"
	"ferry/store"
)

// Serve runs the lender manager until ctx ends: it opens the store and
// CA of cfg.Dir, resumes what was in flight and serves the three
// listeners.
func Serve(ctx context.Context, cfg Config, log *slog.Logger, power PowerFunc) error {
	// What a lease will need is checked before anything is served: an
	// error refuses to start, a warning is logged before "serving".
	r := &configfile.Report{Name: "lender start-up check"}
	CheckSetup(cfg, r, time.Now(), false)
	for _, w := range r.Warnings() {
		log.Warn("lender: start-up check", "warning", w.String())
	}
	if err := r.Err(); err != nil {
		return err
	}
	ca, err := lenderca.Load(cfg.Dir)
	if err != nil {
		return err
	}
	st, err := store.Open(StorePath(cfg.Dir))
	if err != nil {
		return err
	}
	defer st.Close()
	m := New(st, ca, log, Options{PublicURL: cfg.PublicURL, TokenTTL: time.Duration(cfg.TokenTTL), Power: power})
	if err := m.Resume(ctx); err != nil {
		return err
	}
	agentTLS, err := agentTLS(cfg.Dir, ca)
	if err != nil {
		return err
	}
	borrowers, err := LoadBorrowers(cfg, log)
	if err != nil {
		return err
	}
	m2mTLS, err := borrowers.TLS(cfg.M2MCert, cfg.M2MKey)
	if err != nil {
		return fmt.Errorf("m2m listener: %w", err)
	}
	admin, err := api.ListenUnix(AdminSocket(cfg.Dir))
	if err != nil {
		return err
	}
	servers := []struct {
		name string
		srv  *http.Server
		ln   net.Listener
	}{
		{"agent", newHTTPServer(m.AgentHandler(), log, defaultTimeouts, api.MaxEnroll), nil},
		{"m2m", newHTTPServer(m.M2MHandler(borrowers), log, defaultTimeouts, maxRequestBody), nil},
		{"admin", newHTTPServer(m.AdminHandler(), log, defaultTimeouts, maxRequestBody), admin},
	}
	servers[0].srv.TLSConfig, servers[1].srv.TLSConfig = agentTLS, m2mTLS
	for i, addr := range []string{cfg.AgentListen, cfg.M2MListen} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s listener %s: %w", servers[i].name, addr, err)
		}
		servers[i].ln = tls.NewListener(ln, servers[i].srv.TLSConfig)
	}
	errc := make(chan error, len(servers)+1)
	if cfg.Netboot != nil {
		nb, err := netbootServer(m, *cfg.Netboot)
		if err != nil {
			return err
		}
		go func() { errc <- nb.Serve(ctx) }()
	}
	for _, s := range servers {
		go func() { errc <- s.srv.Serve(s.ln) }()
	}
	log.Info("lender serving", "agent", cfg.AgentListen, "m2m", cfg.M2MListen, "admin", AdminSocket(cfg.Dir), "ca_sha256", ca.Fingerprint())
	if cfg.Ready != nil {
		cfg.Ready()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, s := range servers {
		s.srv.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// agentTLS presents tls.pem plus the CA (agents pin the CA) and verifies
// client certificates against the CA when sent (phase reports).
func agentTLS(dir string, ca *lenderca.CA) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, lenderca.TLSCertFile), filepath.Join(dir, lenderca.TLSKeyFile))
	if err != nil {
		return nil, fmt.Errorf("agent listener key pair in %s: %w", dir, err)
	}
	cert.Certificate = append(cert.Certificate, ca.Cert.Raw)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}, nil
}

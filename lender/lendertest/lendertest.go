// Package lendertest runs a real lender manager for the tests of the
// packages that talk to one: image A's agent and the keeper.
package lendertest

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"ferry/lender"
	"ferry/lenderca"
	"ferry/store"
)

// Agent is a lender manager on a temporary store and CA, behind its agent
// API on loopback TLS as the lender serves it: a client certificate is
// asked for and verified when given, never required.
type Agent struct {
	M   *lender.Manager
	Srv *httptest.Server
	URL string
	CA  *lenderca.CA
}

// NewAgent starts one; it stops when the test ends.
func NewAgent(t testing.TB) *Agent {
	t.Helper()
	dir := t.TempDir()
	ca, err := lenderca.Init(dir, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, lenderca.TLSCertFile), filepath.Join(dir, lenderca.TLSKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	cert.Certificate = append(cert.Certificate, ca.Cert.Raw)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv := httptest.NewUnstartedServer(nil)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	a := &Agent{Srv: srv, URL: srv.URL, CA: ca}
	a.M = lender.New(st, ca, slog.New(slog.DiscardHandler), lender.Options{PublicURL: a.URL})
	srv.Config.Handler = a.M.AgentHandler()
	return a
}

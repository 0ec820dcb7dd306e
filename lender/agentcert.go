package lender

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"ferry/lenderca"
)

// agentCert is the agent listener's key pair (DIR/tls.pem, tls.key),
// asked for per handshake. A lender runs for months and its certificate
// ends (two years after init): it is renewed TLSRenewBefore its end by
// the lender itself, at start, on reload and by a timer, so agents,
// which pin the CA and check the name, never meet an expired one.
type agentCert struct {
	dir  string
	ca   *lenderca.CA
	log  *slog.Logger
	mu   sync.Mutex // one load or renewal at a time
	cur  atomic.Pointer[tls.Certificate]
	wake chan struct{}
}

func newAgentCert(dir string, ca *lenderca.CA, log *slog.Logger) (*agentCert, error) {
	a := &agentCert{dir: dir, ca: ca, log: log, wake: make(chan struct{}, 1)}
	if err := a.load(); err != nil {
		return nil, err
	}
	return a, nil
}

// load reads the pair from disk: the one renewal wrote, or one an
// operator put there. On error the running pair stays.
func (a *agentCert) load() error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(a.dir, lenderca.TLSCertFile), filepath.Join(a.dir, lenderca.TLSKeyFile))
	if err != nil {
		return fmt.Errorf("agent listener key pair in %s: %w", a.dir, err)
	}
	cert.Certificate = append(cert.Certificate, a.ca.Cert.Raw) // agents pin the CA: send it
	a.cur.Store(&cert)
	return nil
}

func (a *agentCert) leaf() *x509.Certificate { return a.cur.Load().Leaf }

// renewIfDue renews the certificate when it ends within TLSRenewBefore
// of now, and logs its new end; an error is logged and returned, and
// the running certificate stays until the next try.
func (a *agentCert) renewIfDue(now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.leaf()
	if old.NotAfter.Sub(now) >= lenderca.TLSRenewBefore {
		return nil
	}
	cert, err := a.ca.RenewTLS(a.dir, now)
	if err == nil {
		err = a.load()
	}
	if err != nil {
		a.log.Error("lender: agent listener certificate not renewed, the running one stays", "not_after", old.NotAfter, "err", err)
		return err
	}
	a.log.Info("lender: agent listener certificate renewed", "file", filepath.Join(a.dir, lenderca.TLSCertFile),
		"old_not_after", old.NotAfter.UTC().Format(time.RFC3339), "not_after", cert.NotAfter.UTC().Format(time.RFC3339), "serial", cert.SerialNumber.Text(16))
	return nil
}

// reload takes the pair on disk (replaced by hand, perhaps) and renews
// it if due; a pair that does not load leaves the running one.
func (a *agentCert) reload(now time.Time) {
	a.mu.Lock()
	err := a.load()
	a.mu.Unlock()
	if err != nil {
		a.log.Error("lender: reload: agent listener key pair not reloaded, the running one stays", "err", err)
	}
	a.renewIfDue(now)
	a.poke()
}

// poke makes keepRenewed look at the (new) end again.
func (a *agentCert) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// keepRenewed renews the certificate when it gets within TLSRenewBefore
// of its end, until ctx ends. It wakes at that moment, and at least
// hourly (a wall clock that jumps is caught within the hour), and after
// a failed renewal tries again within the hour.
func (a *agentCert) keepRenewed(ctx context.Context) {
	for {
		wait := time.Hour
		if a.renewIfDue(time.Now()) == nil {
			wait = max(min(time.Until(a.leaf().NotAfter.Add(-lenderca.TLSRenewBefore)), time.Hour), time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// config is the agent listener's TLS: the current pair per handshake,
// client certificates of the CA verified when sent (phase reports).
func (a *agentCert) config() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(a.ca.Cert)
	return &tls.Config{MinVersion: tls.VersionTLS13, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return a.cur.Load(), nil }}
}

package borrower

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"ferry/api"
)

// Outcomes of a server's shutdown at return, as `lease show` prints them.
// Whatever the outcome, the lender powers the server off afterwards: a
// server that did not shut down cleanly in time is still returned.
const (
	ShutdownClean     = "clean"         // keeper accepted; the server left the gateway in time
	ShutdownTimeout   = "timeout"       // keeper accepted; still connected when the wait ended
	ShutdownFailed    = "failed"        // the keeper could not be asked (unreachable, refused)
	ShutdownNotThere  = "not-connected" // the gateway showed no tunnel of the server to ask through
	ShutdownSkipped   = "skipped"       // no keeper client certificate or gateway status configured
	maxKeeperAnswer   = 4 << 10
	keeperCallTimeout = 10 * time.Second
	goneEvery         = 250 * time.Millisecond
	askParallel       = 32
)

// Shutdown is one server's clean shutdown at return.
type Shutdown struct {
	Server  string    `json:"server"`
	VIP     string    `json:"virtual_ip,omitempty"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
	Asked   time.Time `json:"asked,omitzero"`
	Seconds float64   `json:"seconds,omitempty"` // from the request until the server left the gateway
}

// keeperClientCert loads the borrower's client certificate for keepers
// and checks that it chains to the borrower CA, which keepers require.
func keeperClientCert(cfg Config, caPEM []byte) (*tls.Certificate, error) {
	if cfg.KeeperClientCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.KeeperClientCert, cfg.KeeperClientKey)
	if err != nil {
		return nil, fmt.Errorf("keeper_client_cert %s / keeper_client_key %s: %w", cfg.KeeperClientCert, cfg.KeeperClientKey, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("borrower_ca %s: no PEM certificate", cfg.BorrowerCA)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	_, err = cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, fmt.Errorf("keeper_client_cert %s: keepers would refuse it: it does not chain to borrower_ca %s as a client: %w",
			cfg.KeeperClientCert, cfg.BorrowerCA, err)
	}
	return &cert, nil
}

// shutdownServers asks the keeper of every server of l to power its
// server off, then waits (at most shutdown_wait_seconds) until the
// gateway no longer shows their tunnels. It never fails: each server's
// outcome is recorded, and the lender powers off whatever is left.
func (m *Manager) shutdownServers(ctx context.Context, l Lease) []Shutdown {
	out := make([]Shutdown, len(l.Lender.Servers))
	for i, s := range l.Lender.Servers {
		out[i] = Shutdown{Server: s.ID}
	}
	reason := ""
	switch {
	case m.keeperCert == nil:
		reason = "no keeper_client_cert configured"
	case m.tunnels == nil:
		reason = "no gateway status configured: the servers' tunnel addresses are unknown"
	}
	if reason != "" {
		m.setAll(out, l, ShutdownSkipped, reason)
		return out
	}
	peers, err := m.tunnels.Peers(ctx)
	if err != nil {
		m.setAll(out, l, ShutdownFailed, err.Error())
		return out
	}
	m.askAll(ctx, l, peers, out)
	m.waitGone(ctx, l, out)
	for _, s := range out {
		m.log.Info("server shutdown at return", "lease", l.ID, "server", s.Server, "vip", s.VIP,
			"outcome", s.Outcome, "seconds", s.Seconds, "detail", s.Detail)
	}
	return out
}

func (m *Manager) setAll(out []Shutdown, l Lease, outcome, detail string) {
	m.log.Warn("servers not asked to shut down; the lender powers them off", "lease", l.ID, "reason", detail)
	for i := range out {
		out[i].Outcome, out[i].Detail = outcome, detail
	}
}

// askAll sends every connected server's keeper the shutdown request.
func (m *Manager) askAll(ctx context.Context, l Lease, peers []Peer, out []Shutdown) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, askParallel)
	for i, s := range l.Lender.Servers {
		p, ok := peerOf(l, s.ID, s.SPKIPin, peers)
		if !ok {
			out[i].Outcome, out[i].Detail = ShutdownNotThere, "no tunnel at the gateway (already off, or never connected)"
			continue
		}
		out[i].VIP = p.VIP.String()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i].Asked = time.Now().UTC()
			if err := m.askKeeper(ctx, p.VIP, s.SPKIPin); err != nil {
				out[i].Outcome, out[i].Detail = ShutdownFailed, err.Error()
			}
		}()
	}
	wg.Wait()
}

// peerOf finds the gateway's peer for server id of l: by its key's pin
// (ferry gateway) or its connection's name (strongSwan).
func peerOf(l Lease, id, pin string, peers []Peer) (Peer, bool) {
	for _, p := range peers {
		if pin != "" && p.Pin == pin {
			return p, true
		}
		if p.Conn != "" && p.Conn == "ferry-"+l.Lender.ID+"-"+id {
			return p, true
		}
	}
	return Peer{}, false
}

// askKeeper posts the shutdown request to the keeper at vip, which must
// present the server's one-time key (pin): the gateway gave vip to that
// key, and the pin proves the answer comes from it.
func (m *Manager) askKeeper(ctx context.Context, vip netip.Addr, pin string) error {
	ctx, cancel := context.WithTimeout(ctx, keeperCallTimeout)
	defer cancel()
	url := "https://" + net.JoinHostPort(vip.String(), strconv.Itoa(m.cfg.keeperTLSPort())) + api.PathShutdown
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: pinnedTLS(pin, m.keeperCert), DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("keeper %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxKeeperAnswer))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("keeper %s: %s: %.200q", url, resp.Status, body)
	}
	var ans api.ShutdownAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		return fmt.Errorf("keeper %s: answer: %w", url, err)
	}
	m.log.Info("keeper accepted the shutdown", "vip", vip, "signal", ans.Signal, "command", ans.Command, "pid", ans.PID, "note", ans.Note)
	return nil
}

// pinnedTLS trusts exactly the server key whose SPKI SHA-256 is pin (the
// one-time key the lender reported), and presents client.
func pinnedTLS(pin string, client *tls.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*client},
		InsecureSkipVerify: true, // replaced by the pin check below, which is stricter than a chain
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("keeper presented no certificate")
			}
			leaf := cs.PeerCertificates[0]
			sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
			if got := hex.EncodeToString(sum[:]); got != pin {
				return fmt.Errorf("keeper key pin %s, want the server's %s", got, pin)
			}
			if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
				return fmt.Errorf("keeper certificate valid %s to %s, not now", leaf.NotBefore, leaf.NotAfter)
			}
			return nil
		}}
}

// waitGone polls the gateway until every asked server left it, or the
// wait ends; then gives the servers that left a short grace to finish
// powering off before the lender cuts power.
func (m *Manager) waitGone(ctx context.Context, l Lease, out []Shutdown) {
	deadline := time.Now().Add(m.cfg.shutdownWait())
	pending := func() int {
		n := 0
		for _, s := range out {
			if s.Outcome == "" {
				n++
			}
		}
		return n
	}
	for pending() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		peers, err := m.tunnels.Peers(ctx)
		if err != nil {
			m.log.Warn("gateway status while waiting for shutdowns", "lease", l.ID, "err", err)
		}
		for i, s := range l.Lender.Servers {
			if out[i].Outcome != "" || err != nil {
				continue
			}
			if _, there := peerOf(l, s.ID, s.SPKIPin, peers); !there {
				out[i].Outcome, out[i].Seconds = ShutdownClean, time.Since(out[i].Asked).Seconds()
			}
		}
		if pending() > 0 {
			sleep(ctx, goneEvery)
		}
	}
	clean := false
	for i := range out {
		switch out[i].Outcome {
		case "":
			out[i].Outcome = ShutdownTimeout
			out[i].Detail = fmt.Sprintf("still connected at the gateway after %s; the lender powers it off", m.cfg.shutdownWait())
		case ShutdownClean:
			clean = true
		}
	}
	if clean {
		sleep(ctx, m.cfg.shutdownGrace())
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

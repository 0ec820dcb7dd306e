package lender

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"ferry/api"
	"ferry/configfile"
	"ferry/internal/promreg"
	"ferry/lenderca"
	"ferry/store"
)

// StopGrace bounds how long a stopping manager waits for the requests in
// flight to finish before it closes their connections.
const StopGrace = 10 * time.Second

// Serve runs the lender manager until ctx ends: it opens the store and
// CA of cfg.Dir, resumes what was in flight and serves the three
// listeners. Each Config received on reload (already loaded and checked,
// see ReadConfig and CheckSetup) replaces what can change while serving:
// the borrowers, the m2m key pair, token_ttl and image A's files and
// options, and the agent listener's key pair is read again; a change of
// anything else is logged as waiting for a restart. The agent listener's
// certificate is renewed before it ends (agentCert).
// When ctx ends it logs "stopping" and lets requests in flight finish
// (at most StopGrace).
func Serve(ctx context.Context, cfg Config, log *slog.Logger, power PowerFunc, reload <-chan Config) error {
	// The agent listener's certificate is renewed when near or past its
	// end before the checks, which would refuse an expired one.
	if ca, err := lenderca.Load(cfg.Dir); err == nil {
		if a, err := newAgentCert(cfg.Dir, ca, log); err == nil {
			a.renewIfDue(time.Now())
		}
	}
	// What a lease will need is checked before anything is served: an
	// error refuses to start, a warning is logged before "serving".
	r := &configfile.Report{Name: "lender start-up check"}
	CheckSetup(cfg, r, time.Now(), false)
	for _, w := range r.Warnings() {
		log.Warn("lender: start-up check", "warning", w.String())
	}
	for _, n := range r.Infos() {
		log.Info("lender: start-up check", "note", n.String())
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
	agentCert, err := newAgentCert(cfg.Dir, ca, log)
	if err != nil {
		return err
	}
	live := &liveM2M{}
	if err := live.apply(cfg, log); err != nil {
		return err
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
		{"m2m", newHTTPServer(m.leaseAPI(live.borrowerOf), log, defaultTimeouts, maxRequestBody), nil},
		{"admin", newHTTPServer(m.AdminHandler(), log, defaultTimeouts, maxRequestBody), admin},
	}
	servers[0].srv.TLSConfig = agentCert.config()
	servers[1].srv.TLSConfig = &tls.Config{GetConfigForClient: live.tlsConfig}
	for i, addr := range []string{cfg.AgentListen, cfg.M2MListen} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s listener %s: %w", servers[i].name, addr, err)
		}
		servers[i].ln = tls.NewListener(ln, servers[i].srv.TLSConfig)
	}
	statusLn, err := promreg.Listen(cfg.StatusListen, DefaultStatusListen, log)
	if err != nil {
		return err
	}
	if statusLn != nil {
		servers = append(servers, struct {
			name string
			srv  *http.Server
			ln   net.Listener
		}{"status", newHTTPServer(m.StatusHandler(), log, defaultTimeouts, maxRequestBody), statusLn})
	}
	errc := make(chan error, len(servers)+1)
	nbCtx, stopNetboot := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNetboot()
	var netbootDone sync.WaitGroup
	nbLive := &atomic.Pointer[NetbootConfig]{}
	if cfg.Netboot != nil {
		nbLive.Store(cfg.Netboot)
		nb, err := netbootServerLive(m, nbLive)
		if err != nil {
			return err
		}
		netbootDone.Add(1)
		go func() { defer netbootDone.Done(); errc <- nb.Serve(nbCtx) }()
	}
	for _, s := range servers {
		go func() { errc <- s.srv.Serve(s.ln) }()
	}
	log.Info("lender serving", "agent", cfg.AgentListen, "m2m", cfg.M2MListen, "admin", AdminSocket(cfg.Dir), "status", promreg.Addr(statusLn), "ca_sha256", ca.Fingerprint())
	if cfg.Ready != nil {
		cfg.Ready()
	}
	renewCtx, stopRenewing := context.WithCancel(ctx)
	defer stopRenewing()
	go agentCert.keepRenewed(renewCtx)
	running := cfg
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			break loop
		case next := <-reload:
			running = m.reload(running, next, live, nbLive, log)
			agentCert.reload(time.Now())
			if cfg.Ready != nil {
				cfg.Ready()
			}
		}
	}
	log.Info("lender stopping: finishing requests in flight", "grace", StopGrace)
	// Held polls answer now (304: the borrower asks again, with its tag,
	// whichever lender answers next), rather than hold the grace.
	m.StopWaits()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), StopGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.srv.Shutdown(stopCtx); err != nil {
				log.Warn("lender: requests still in flight at the end of the grace: cut", "listener", s.name, "err", err)
				s.srv.Close()
			}
		}()
	}
	wg.Wait()
	stopNetboot()
	netbootDone.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("lender stopped")
	return err
}

// reload applies next where it can and says what waits for a restart.
func (m *Manager) reload(old, next Config, live *liveM2M, nb *atomic.Pointer[NetbootConfig], log *slog.Logger) Config {
	if err := live.apply(next, log); err != nil {
		log.Error("lender: reload refused, the running configuration stays", "err", err)
		return old
	}
	m.tokenTTL.Store(int64(next.TokenTTL))
	restart := []string{}
	for _, f := range []struct {
		name     string
		old, new string
	}{{"dir", old.Dir, next.Dir}, {"agent_listen", old.AgentListen, next.AgentListen}, {"public_url", old.PublicURL, next.PublicURL},
		{"m2m_listen", old.M2MListen, next.M2MListen}} {
		if f.old != f.new {
			restart = append(restart, f.name)
		}
	}
	applied := next
	applied.Dir, applied.AgentListen, applied.PublicURL, applied.M2MListen = old.Dir, old.AgentListen, old.PublicURL, old.M2MListen
	switch {
	case (old.Netboot == nil) != (next.Netboot == nil):
		restart = append(restart, "netboot")
		applied.Netboot = old.Netboot
	case next.Netboot != nil:
		o, n := *old.Netboot, *next.Netboot
		// image A may change while serving; where and how DHCP answers may not.
		n2 := n
		n2.KernelA, n2.InitrdA, n2.Cmdline = o.KernelA, o.InitrdA, o.Cmdline
		if fmt.Sprint(n2) != fmt.Sprint(o) {
			restart = append(restart, "netboot (other than kernel_a, initrd_a, cmdline)")
			o.KernelA, o.InitrdA, o.Cmdline = n.KernelA, n.InitrdA, n.Cmdline
			n = o
		}
		nb.Store(&n)
		applied.Netboot = &n
	}
	if len(restart) > 0 {
		log.Warn("lender: reload: these settings change only at restart", "settings", restart)
	}
	log.Info("lender: configuration reloaded", "borrowers", len(next.borrowerConfigs()), "token_ttl", time.Duration(next.TokenTTL))
	return applied
}

// liveM2M is what the m2m listener consults per connection: the
// borrowers and the key pair, both replaced whole by a reload.
type liveM2M struct {
	borrowers atomic.Pointer[Borrowers]
	tls       atomic.Pointer[tls.Config]
}

func (l *liveM2M) apply(cfg Config, log *slog.Logger) error {
	bs, err := LoadBorrowers(cfg, log)
	if err != nil {
		return err
	}
	t, err := bs.TLS(cfg.M2MCert, cfg.M2MKey)
	if err != nil {
		return fmt.Errorf("m2m listener: %w", err)
	}
	l.borrowers.Store(bs)
	l.tls.Store(t)
	return nil
}

func (l *liveM2M) tlsConfig(*tls.ClientHelloInfo) (*tls.Config, error) { return l.tls.Load(), nil }

func (l *liveM2M) borrowerOf(r *http.Request) (owner, error) { return l.borrowers.Load().borrowerOf(r) }

package netboot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"
)

// Server is the netboot service: DHCP (or ProxyDHCP), TFTP and HTTP.
type Server struct {
	cfg    Config
	policy Policy
	seal   *sealer
	boots  *bootTable
	leases *leaseTable // nil in ModeProxyDHCP
	disc   *discoveries
	log    *slog.Logger
	now    func() time.Time
}

// New checks cfg, fills its defaults and returns a Server answering for
// policy. Nothing listens until Serve.
func New(cfg Config, policy Policy) (*Server, error) {
	if policy == nil {
		return nil, errors.New("netboot: nil policy")
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, policy: policy, log: cfg.Log, now: time.Now}
	seal, err := newSealer(func() time.Time { return s.now() })
	if err != nil {
		return nil, err
	}
	s.seal, s.boots, s.disc = seal, newBootTable(cfg.MaxBoot), newDiscoveries(cfg.MaxLeases)
	if cfg.Mode == ModeDHCP {
		s.leases = newLeaseTable(cfg.Pool, cfg.MaxLeases, cfg.Leases, cfg.Log)
	}
	return s, nil
}

func (c *Config) fill() error {
	if c.Log == nil {
		c.Log = discard()
	}
	if c.Events == nil {
		c.Events = noEvents{}
	}
	if !c.ServerIP.Is4() {
		return fmt.Errorf("netboot: config ServerIP %v: want an IPv4 address", c.ServerIP)
	}
	if c.Mode != ModeDHCP && c.Mode != ModeProxyDHCP {
		return fmt.Errorf("netboot: config Mode %d: want ModeDHCP or ModeProxyDHCP", c.Mode)
	}
	if c.Mode == ModeDHCP {
		if err := c.Pool.check(c.ServerIP); err != nil {
			return err
		}
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.HTTPAddr, netip.AddrPortFrom(c.ServerIP, 8080).String())
	def(&c.HTTPBase, "http://"+c.HTTPAddr)
	c.HTTPBase = strings.TrimRight(c.HTTPBase, "/")
	def(&c.TFTPAddr, netip.AddrPortFrom(c.ServerIP, 69).String())
	def(&c.TFTPRoot, DefaultTFTPRoot)
	def(&c.BIOSFile, DefaultBIOSFile)
	def(&c.EFIFile, DefaultEFIFile)
	for _, f := range []string{c.BIOSFile, c.EFIFile} {
		if !filepath.IsLocal(f) || strings.ContainsRune(f, '/') {
			return fmt.Errorf("netboot: config iPXE file %q: want a file name in the TFTP root", f)
		}
	}
	if c.URLLifetime <= 0 {
		c.URLLifetime = 5 * time.Minute
	}
	if c.HTTPStall <= 0 {
		c.HTTPStall = 30 * time.Second
	}
	if c.MaxLeases <= 0 {
		c.MaxLeases = 4096
	}
	if c.Leases == nil {
		c.Leases = NewMemLeases()
	}
	if c.MaxBoot <= 0 {
		c.MaxBoot = 4096
	}
	return nil
}

func (p *Pool) check(server netip.Addr) error {
	switch {
	case !p.Prefix.IsValid() || !p.Prefix.Addr().Is4():
		return fmt.Errorf("netboot: config Pool.Prefix %v: want an IPv4 prefix", p.Prefix)
	case !p.Prefix.Contains(p.First) || !p.Prefix.Contains(p.Last):
		return fmt.Errorf("netboot: config Pool %v-%v: not inside %v", p.First, p.Last, p.Prefix)
	case p.Last.Less(p.First):
		return fmt.Errorf("netboot: config Pool %v-%v: last before first", p.First, p.Last)
	case !p.Prefix.Contains(server):
		return fmt.Errorf("netboot: config ServerIP %v: not inside Pool.Prefix %v", server, p.Prefix)
	}
	if p.LeaseTime <= 0 {
		p.LeaseTime = time.Hour
	}
	return nil
}

// Serve loads the stored DHCP leases, then runs the DHCP, TFTP and HTTP
// servers until ctx ends or one fails, and in ModeDHCP answers IPv6
// router solicitations (ra_linux.go).
func (s *Server) Serve(ctx context.Context) error {
	if s.leases != nil {
		if err := s.leases.load(ctx, s.now()); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if s.cfg.Mode == ModeDHCP {
		// Not fatal: without it iPXE only waits longer (ra_linux.go).
		go func() {
			if err := s.serveRA(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("netboot: no IPv6 router advertisements: iPXE waits about 16 s for IPv6 on a link without a router", "err", err)
			}
		}()
	}
	run := []func(context.Context) error{s.serveHTTP, s.serveTFTP, s.serveDHCP}
	errc := make(chan error, len(run))
	for _, f := range run {
		go func() {
			err := f(ctx)
			cancel(err)
			errc <- err
		}()
	}
	var first error
	for range run {
		if err := <-errc; err != nil && first == nil && !errors.Is(err, context.Canceled) {
			first = err
		}
	}
	return first
}

// httpServer bounds every connection: headers within 10 s, nothing idle
// for more than a minute, no request body at all (every request is a
// GET), and every answer cut when it stalls for HTTPStall (handler). No
// whole-request read or write timeout: the server's own ReadTimeout would
// cancel a long download's context and a WriteTimeout would cut a slow
// but moving one.
func (s *Server) httpServer() *http.Server {
	return &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		MaxHeaderBytes: 8 << 10, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
}

func (s *Server) serveHTTP(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("netboot: http: %w", err)
	}
	hs := s.httpServer()
	context.AfterFunc(ctx, func() { hs.Close() })
	s.log.Info("netboot: http listening", "addr", ln.Addr().String(), "base", s.cfg.HTTPBase)
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("netboot: http %s: %w", s.cfg.HTTPAddr, err)
	}
	return ctx.Err()
}

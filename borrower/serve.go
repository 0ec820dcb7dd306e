package borrower

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"ferry/api"
	"ferry/catalog"
	"ferry/configfile"
	"ferry/gatewayctl"
	"ferry/internal/promreg"
	"ferry/rootprep"
	"ferry/store"
)

// preparer adapts rootprep to Roots: retiring a root that is already gone
// succeeds, so a resumed return does not fail on its own earlier work.
type preparer struct {
	p       *rootprep.Preparer
	archive bool
}

func (r preparer) Prepare(ctx context.Context, template, name string, progress func(done, total int64)) (string, error) {
	dir := filepath.Join(r.p.Roots, name)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil // made before a crash: rootprep renames whole roots into place
	}
	// A copy a killed borrower left half done starts again from nothing.
	if err := r.p.RemovePartial(name); err != nil {
		return "", err
	}
	total, err := rootprep.TemplateBytes(template)
	if err != nil {
		return "", err
	}
	dir, _, err = r.p.PrepareWith(ctx, template, name, func(s rootprep.Stats) { progress(s.Bytes, total) })
	return dir, err
}

func (r preparer) Ready(name string) bool {
	if rootprep.ValidateName(name) != nil {
		return false
	}
	st, err := os.Stat(filepath.Join(r.p.Roots, name))
	return err == nil && st.IsDir()
}

func (r preparer) Retire(ctx context.Context, name string) error {
	dir := filepath.Join(r.p.Roots, name)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if r.archive {
		_, _, err := r.p.Archive(ctx, dir)
		return err
	}
	return r.p.Delete(ctx, dir)
}

// Open assembles a Manager from cfg: store, catalogue, roots, gateway and
// the mutual-TLS client of the lender. Close the returned store.
func Open(cfg Config, log *slog.Logger) (*Manager, store.Store, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("borrower dir: %w", err)
	}
	cat, err := catalog.Open(ImagesDir(cfg.Dir), log)
	if err != nil {
		return nil, nil, err
	}
	rp, err := rootprep.New(RootsDir(cfg.Dir), ArchiveDir(cfg.Dir), log)
	if err != nil {
		return nil, nil, err
	}
	tlsCfg, err := api.ClientTLS(cfg.M2MCert, cfg.M2MKey, cfg.M2MCA)
	if err != nil {
		return nil, nil, fmt.Errorf("lender client: %w", err)
	}
	keys := &liveKeys{}
	if err := keys.load(cfg); err != nil {
		return nil, nil, err
	}
	// The key pair is asked for per connection, so that a reload renews it.
	tlsCfg.Certificates, tlsCfg.GetClientCertificate = nil, keys.m2mCert
	client := &api.Client{Base: cfg.LenderURL, HTTP: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsCfg}}}
	gw, tunnels, err := openGateway(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(StorePath(cfg.Dir))
	if err != nil {
		return nil, nil, err
	}
	m, err := New(cfg, st, cat, preparer{p: rp, archive: cfg.Archive}, gw, tunnels, client, log)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	m.keys = keys
	if m.exports, err = openExports(cfg); err != nil {
		st.Close()
		return nil, nil, err
	}
	if m.exports == nil {
		log.Warn("nfs_exports none: the borrower restricts no NFS export; each root must be exported to its server's tunnel address alone by other means")
	}
	return m, st, nil
}

// openGateway returns what tells the gateway about keys and what asks it
// who holds which virtual IP, for cfg's gateway kind; either may be nil.
func openGateway(cfg Config, log *slog.Logger) (Gateway, Tunnels, error) {
	if cfg.GatewayKind == "strongswan" {
		g, err := newSwanGateway(cfg, log)
		if err != nil {
			return nil, nil, err
		}
		return g, g, nil
	}
	var gw Gateway
	var tunnels Tunnels
	if cfg.AllowFile != "" {
		gw = allowGateway{f: gatewayctl.NewAllowFile(cfg.AllowFile, log)}
	}
	if cfg.GatewayStatus != "" {
		tunnels = ferryStatus{path: cfg.GatewayStatus}
	} else {
		log.Warn("no gateway_status configured: image B will be refused to every address, since none can be tied to a lease")
	}
	return gw, tunnels, nil
}

// StopGrace bounds how long a stopping manager waits for the requests
// in flight to finish before it closes their connections.
const StopGrace = 10 * time.Second

// Serve runs the borrower manager until ctx ends. Each Config received
// on reload (loaded and checked) renews the m2m and image key pairs, what
// certificate renewal needs; a change of anything else is logged as
// waiting for a restart. When ctx ends it logs "stopping" and lets
// requests in flight finish (at most StopGrace).
func Serve(ctx context.Context, cfg Config, log *slog.Logger, reload <-chan Config) error {
	// What a lease will need is checked before anything is served: an
	// error refuses to start, a warning is logged before "serving".
	r := &configfile.Report{Name: "borrower start-up check"}
	CheckSetup(ctx, cfg, r, time.Now(), false)
	for _, w := range r.Warnings() {
		log.Warn("borrower: start-up check", "warning", w.String())
	}
	for _, n := range r.Infos() {
		log.Info("borrower: start-up check", "note", n.String())
	}
	if err := r.Err(); err != nil {
		return err
	}
	m, st, err := Open(cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	defer m.Close() // before the store closes: copies record their end
	admin, err := api.ListenUnix(AdminSocket(cfg.Dir))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ImageListen)
	if err != nil {
		return fmt.Errorf("image listener %s: %w", cfg.ImageListen, err)
	}
	imgLn := tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: m.keys.imageCert})
	statusLn, err := promreg.Listen(cfg.StatusListen, DefaultStatusListen, log)
	if err != nil {
		return err
	}
	adminSrv, imgSrv, statusSrv := m.adminServer(), m.imageServer(), m.statusServer()
	errc := make(chan error, 3)
	go func() { errc <- adminSrv.Serve(admin) }()
	go func() { errc <- imgSrv.Serve(imgLn) }()
	if statusLn != nil {
		go func() { errc <- statusSrv.Serve(statusLn) }()
	}
	if g, ok := m.gw.(*swanGateway); ok {
		if err := g.LoadPool(ctx, netip.MustParsePrefix(cfg.TunnelPool)); err != nil {
			return err
		}
	}
	go func() { m.Resume(ctx); m.Sync(ctx) }()
	log.Info("borrower serving", "admin", AdminSocket(cfg.Dir), "images", cfg.ImageListen, "status", promreg.Addr(statusLn), "lender", cfg.LenderURL)
	if cfg.Ready != nil {
		cfg.Ready()
	}
	running := cfg
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			break loop
		case next := <-reload:
			running = m.reload(running, next, log)
			if cfg.Ready != nil {
				cfg.Ready()
			}
		}
	}
	log.Info("borrower stopping: finishing requests in flight", "grace", StopGrace)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), StopGrace)
	defer cancel()
	statusSrv.Close() // nothing in flight worth waiting for
	for _, s := range []*http.Server{adminSrv, imgSrv} {
		if err := s.Shutdown(stopCtx); err != nil {
			log.Warn("borrower: requests still in flight at the end of the grace: cut", "err", err)
			s.Close()
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("borrower stopped")
	return err
}

// reload renews the key pairs of next; every other change waits for a
// restart, and is named.
func (m *Manager) reload(old, next Config, log *slog.Logger) Config {
	if err := m.keys.load(next); err != nil {
		log.Error("borrower: reload refused, the running configuration stays", "err", err)
		return old
	}
	if restart := restartOnly(old, next); len(restart) > 0 {
		log.Warn("borrower: reload: these settings change only at restart", "settings", restart)
	}
	log.Info("borrower: configuration reloaded: key pairs renewed", "m2m_cert", next.M2MCert, "image_cert", next.ImageCert)
	old.M2MCert, old.M2MKey, old.ImageCert, old.ImageKey = next.M2MCert, next.M2MKey, next.ImageCert, next.ImageKey
	return old
}

// restartOnly names the settings (JSON keys) that differ between old and
// next, other than the key pairs a reload renews. Fields not from the
// file (Ready) are not settings.
func restartOnly(old, next Config) []string {
	live := map[string]bool{"m2m_cert": true, "m2m_key": true, "image_cert": true, "image_key": true}
	var out []string
	a, b := reflect.ValueOf(old), reflect.ValueOf(next)
	for i := range a.NumField() {
		name, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" || live[name] {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, name)
		}
	}
	return out
}

// liveKeys are the borrower's key pairs, asked for per connection.
type liveKeys struct {
	m2m, image atomic.Pointer[tls.Certificate]
}

func (k *liveKeys) load(cfg Config) error {
	m2m, err := tls.LoadX509KeyPair(cfg.M2MCert, cfg.M2MKey)
	if err != nil {
		return fmt.Errorf("m2m key pair %s: %w", cfg.M2MCert, err)
	}
	img, err := tls.LoadX509KeyPair(cfg.ImageCert, cfg.ImageKey)
	if err != nil {
		return fmt.Errorf("image listener key pair %s: %w", cfg.ImageCert, err)
	}
	k.m2m.Store(&m2m)
	k.image.Store(&img)
	return nil
}

func (k *liveKeys) m2mCert(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.m2m.Load(), nil
}

func (k *liveKeys) imageCert(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.image.Load(), nil
}

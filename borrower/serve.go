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
	"time"

	"ferry/api"
	"ferry/catalog"
	"ferry/configfile"
	"ferry/gatewayctl"
	"ferry/rootprep"
	"ferry/store"
)

// preparer adapts rootprep to Roots: retiring a root that is already gone
// succeeds, so a resumed return does not fail on its own earlier work.
type preparer struct {
	p       *rootprep.Preparer
	archive bool
}

func (r preparer) Prepare(ctx context.Context, template, name string) (string, error) {
	dir := filepath.Join(r.p.Roots, name)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil // made before a crash: rootprep renames whole roots into place
	}
	dir, _, err := r.p.Prepare(ctx, template, name)
	return dir, err
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

// Serve runs the borrower manager until ctx ends.
func Serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	// What a lease will need is checked before anything is served: an
	// error refuses to start, a warning is logged before "serving".
	r := &configfile.Report{Name: "borrower start-up check"}
	CheckSetup(ctx, cfg, r, time.Now(), false)
	for _, w := range r.Warnings() {
		log.Warn("borrower: start-up check", "warning", w.String())
	}
	if err := r.Err(); err != nil {
		return err
	}
	m, st, err := Open(cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	admin, err := api.ListenUnix(AdminSocket(cfg.Dir))
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(cfg.ImageCert, cfg.ImageKey)
	if err != nil {
		return fmt.Errorf("image listener key pair %s: %w", cfg.ImageCert, err)
	}
	ln, err := net.Listen("tcp", cfg.ImageListen)
	if err != nil {
		return fmt.Errorf("image listener %s: %w", cfg.ImageListen, err)
	}
	imgLn := tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}})
	adminSrv, imgSrv := m.adminServer(), m.imageServer()
	errc := make(chan error, 2)
	go func() { errc <- adminSrv.Serve(admin) }()
	go func() { errc <- imgSrv.Serve(imgLn) }()
	if g, ok := m.gw.(*swanGateway); ok {
		if err := g.LoadPool(ctx, netip.MustParsePrefix(cfg.TunnelPool)); err != nil {
			return err
		}
	}
	go func() { m.Resume(ctx); m.Sync(ctx) }()
	log.Info("borrower serving", "admin", AdminSocket(cfg.Dir), "images", cfg.ImageListen, "lender", cfg.LenderURL)
	if cfg.Ready != nil {
		cfg.Ready()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	adminSrv.Close()
	imgSrv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

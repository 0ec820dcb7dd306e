package borrower

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"ferry/api"
	"ferry/configfile"
	"ferry/pki"
)

// CheckSetup records in r what serving cfg and its first lease will need
// beyond the file itself: every key pair matching its certificate and
// chaining where its peers will check it (the images server and the
// keeper client to borrower_ca), the CAs, the NFS server's tools and
// files, the gateway's allow list and status socket, the lender answering
// over mutual TLS (a warning: it may start later); certificates that end
// within 30 days and keys others may read are warnings. running is true
// for `serve --check`: a borrower already serving the directory is then a
// warning, not an error.
func CheckSetup(ctx context.Context, cfg Config, r *configfile.Report, now time.Time, running bool) {
	var own *x509.CertPool
	if cfg.BorrowerCA != "" {
		cas, w, err := pki.CheckCAFile(cfg.BorrowerCA, now)
		warn(r, "borrower_ca", cfg.BorrowerCA, err, w)
		if err == nil {
			own = x509.NewCertPool()
			for _, c := range cas {
				own.AddCert(c)
			}
		}
	}
	if cfg.M2MCA != "" {
		_, w, err := pki.CheckCAFile(cfg.M2MCA, now)
		warn(r, "m2m_ca", cfg.M2MCA, err, w)
	}
	if cfg.LenderCA != "" {
		_, w, err := pki.CheckCAFile(cfg.LenderCA, now)
		warn(r, "lender_ca", cfg.LenderCA, err, w)
	}
	if cfg.M2MCert != "" && cfg.M2MKey != "" {
		_, w, err := pki.CheckPair(cfg.M2MCert, cfg.M2MKey, pki.UsageClient, nil, now)
		warn(r, "m2m_cert", cfg.M2MCert, err, w)
	}
	if cfg.ImageCert != "" && cfg.ImageKey != "" && own != nil {
		// Lent servers check the images server against borrower_ca.
		_, w, err := pki.CheckPair(cfg.ImageCert, cfg.ImageKey, pki.UsageServer, own, now)
		warn(r, "image_cert", cfg.ImageCert, err, w)
	}
	if cfg.KeeperClientCert != "" && own != nil {
		// Keepers admit only client certificates of borrower_ca.
		_, w, err := pki.CheckPair(cfg.KeeperClientCert, cfg.KeeperClientKey, pki.UsageClient, own, now)
		warn(r, "keeper_client_cert", cfg.KeeperClientCert, err, w)
	}
	if cfg.DefaultTemplate != "" {
		if fi, err := os.Stat(cfg.DefaultTemplate); err != nil || !fi.IsDir() {
			r.Warnf("default_template", cfg.DefaultTemplate, "not a directory: a lease request without --root will fail")
		}
	}
	switch cfg.NFSExports {
	case "kernel":
		if _, err := exec.LookPath("exportfs"); err != nil {
			r.Errorf("nfs_exports", cfg.NFSExports, "no exportfs in PATH: install nfs-kernel-server")
		}
	case "ganesha":
		if d := filepath.Dir(cfg.GaneshaExportsFile); !isDir(d) {
			r.Errorf("ganesha_exports_file", cfg.GaneshaExportsFile, "directory %s does not exist: is nfs-ganesha installed?", d)
		}
		if _, err := os.Stat(cfg.ganeshaPidFile()); err != nil {
			r.Warnf("ganesha_pid_file", cfg.ganeshaPidFile(), "no pid file: is ganesha.nfsd running? Exports are reloaded through it")
		}
	}
	for _, f := range [][2]string{{"allow_file", cfg.AllowFile}, {"gateway_crl_file", cfg.GatewayCRLFile}} {
		if f[1] != "" && !isDir(filepath.Dir(f[1])) {
			r.Errorf(f[0], f[1], "directory %s does not exist", filepath.Dir(f[1]))
		}
	}
	if cfg.GatewayStatus != "" {
		_, err := (ferryStatus{path: cfg.GatewayStatus}).Peers(ctx)
		_, statErr := os.Stat(cfg.GatewayStatus)
		switch {
		case err == nil:
		case running && errors.Is(statErr, fs.ErrNotExist):
			// --check on a site set up a moment ago: the gateway makes
			// its socket when it starts, after this check.
			r.Infof("gateway_status", cfg.GatewayStatus, "no gateway running yet: the socket appears when ferry gateway starts (systemctl start ferry-gateway); image B is served once it answers")
		default:
			r.Warnf("gateway_status", cfg.GatewayStatus, "the gateway does not answer (%v): start ferry gateway; until then image B is refused to every server", err)
		}
	}
	if cfg.M2MCert != "" && cfg.M2MCA != "" && cfg.LenderURL != "" && !r.Failed() {
		if err := pingLender(ctx, cfg); err != nil {
			r.Warnf("lender_url", cfg.LenderURL, "%v", err)
		}
	}
	if fi, err := os.Stat(AdminSocket(cfg.Dir)); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if _, err := api.UnixClient(AdminSocket(cfg.Dir)).HTTP.Get("http://admin/admin/leases"); err == nil {
			if running {
				r.Warnf("dir", cfg.Dir, "a borrower is serving this directory (%s answers)", AdminSocket(cfg.Dir))
			} else {
				r.Errorf("dir", cfg.Dir, "another borrower serves this directory (%s answers): stop it first", AdminSocket(cfg.Dir))
			}
		}
	}
}

// pingLender lists our leases at the lender over mutual TLS: the proof
// that the lender admits our certificate and we trust its.
func pingLender(ctx context.Context, cfg Config) error {
	tlsCfg, err := api.ClientTLS(cfg.M2MCert, cfg.M2MKey, cfg.M2MCA)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := &api.Client{Base: cfg.LenderURL, HTTP: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}}
	var out []api.Lease
	if err := c.Call(ctx, "GET", api.PathLeases, nil, &out); err != nil {
		return fmt.Errorf("the lender does not answer us over mutual TLS (yet): %w", err)
	}
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func warn(r *configfile.Report, field string, value any, err error, w []string) {
	if err != nil {
		r.Errorf(field, value, "%v", err)
	}
	for _, s := range w {
		r.Warnf(field, value, "%s", s)
	}
}

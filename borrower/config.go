// Package borrower is the borrower's manager: it keeps image B (through
// catalog), asks a lender for servers, then prepares one NFS root per
// server while they boot (through rootprep), tells the gateway which one-time keys may connect
// (through gatewayctl), serves image B to lent servers and returns them.
//
// Every lease is first recorded locally with its idempotency key, then
// driven step by step; each step's result is one store transaction, so a
// borrower killed at any moment resumes the lease where it stopped and a
// retried request never leases twice.
package borrower

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"ferry/api"
	"ferry/configfile"
)

// Config is `ferry borrower serve --config FILE`, JSON.
type Config struct {
	Dir string `json:"dir"` // store, admin socket, images/, roots/, archive/
	// The lender's manager-to-manager API, and our mutual-TLS identity.
	LenderURL string `json:"lender_url"`
	M2MCert   string `json:"m2m_cert"`
	M2MKey    string `json:"m2m_key"`
	M2MCA     string `json:"m2m_ca"`
	// BorrowerCA is the CA the gateway presents to lent servers (PEM file).
	BorrowerCA string `json:"borrower_ca"`
	Gateway    string `json:"gateway"`
	// GatewayKind is "ferry" (default: ferry gateway, told through its
	// allow list AllowFile and asked through its status socket
	// GatewayStatus) or "strongswan" (charon, through VICISocket: one conn
	// per server, its virtual IP from SwanPool = TunnelPool, reaching
	// SwanLocalTS, certificates chaining to LenderCA).
	GatewayKind string `json:"gateway_kind"`
	AllowFile   string `json:"allow_file"` // ferry: empty means no gateway is told
	// GatewayCRLFile (ferry gateway): where the borrower keeps the lender
	// CA's CRL, fetched from the lender every 30 s, for the gateway's
	// "crl" setting.
	GatewayCRLFile string   `json:"gateway_crl_file"`
	GatewayStatus  string   `json:"gateway_status"`
	VICISocket     string   `json:"vici_socket"`
	SwanPool       string   `json:"swan_pool"`
	SwanLocalTS    []string `json:"swan_local_ts"`
	LenderCA       string   `json:"lender_ca"`
	// Image B is served on ImageListen (HTTPS with ImageCert/ImageKey) as
	// ImageURL/NAME/{vmlinuz,initrd.img}, only to the virtual IP the
	// gateway gave a server of an active lease of that image.
	ImageListen string `json:"image_listen"`
	ImageURL    string `json:"image_url"`
	ImageCert   string `json:"image_cert"`
	ImageKey    string `json:"image_key"`
	// ImageStallSeconds (60) is how long one write of an image B answer
	// may take before the download is cut: slow downloads go on, stalled
	// ones end.
	ImageStallSeconds int    `json:"image_stall_seconds"`
	TunnelPool        string `json:"tunnel_pool"`
	// NFS: the server lent machines mount, and the path under which it
	// serves each root Dir/roots/NAME as NFSExport/NAME. NFSExports is
	// the NFS server the borrower drives on this host so that each root
	// is exported alone, to its server's tunnel address only, from the
	// moment its key is allowed until the return: "ganesha" (ferry's
	// exports in GaneshaExportsFile, which ganesha's configuration must
	// %include, reloaded with SIGHUP to the pid in GaneshaPidFile; export
	// ids GaneshaExportIDBase + the address's offset in tunnel_pool),
	// "kernel" (exportfs with KernelExportOptions; nfs_export must then
	// be Dir/roots itself), or "none" (the operator restricts exports).
	NFSServer           string `json:"nfs_server"`
	NFSExport           string `json:"nfs_export"`
	NFSExports          string `json:"nfs_exports"`
	GaneshaExportsFile  string `json:"ganesha_exports_file"`
	GaneshaPidFile      string `json:"ganesha_pid_file"`
	GaneshaExportIDBase int    `json:"ganesha_export_id_base"`
	KernelExportOptions string `json:"kernel_export_options"`
	DefaultTemplate     string `json:"default_template"`
	Archive             bool   `json:"archive"` // archive roots at return, else delete
	// RootCopies (DefaultRootCopies, 2) is how many roots are copied at
	// once: a lease of many servers gets its first roots ready soon
	// instead of all of them late (rootcopy.go says why).
	RootCopies int `json:"root_copies"`
	KeeperPort int `json:"keeper_port"` // the keepers' plain-HTTP GET /status
	// At return each server's keeper is asked to shut it down, over HTTPS
	// on KeeperTLSPort (7071) with KeeperClientCert/Key, a client
	// certificate of the borrower CA; unset: servers are not asked, the
	// lender powers them off. The borrower then waits up to
	// ShutdownWaitSeconds (60) for them to leave the gateway, and
	// ShutdownGraceMS (3000; -1: none) more for them to finish powering off.
	KeeperTLSPort       int    `json:"keeper_tls_port"`
	KeeperClientCert    string `json:"keeper_client_cert"`
	KeeperClientKey     string `json:"keeper_client_key"`
	ShutdownWaitSeconds int    `json:"shutdown_wait_seconds"`
	ShutdownGraceMS     int    `json:"shutdown_grace_ms"`
	LeaseHours          int    `json:"lease_hours"`
	LeaseSeconds        int    `json:"lease_seconds"` // overrides lease_hours when set (at least 60)
	PollSeconds         int    `json:"poll_seconds"`
	// Tunnel is the IKE timers of the servers' tunnels, sent with each
	// lease (api.TunnelTimers); keep them equal to the gateway's.
	Tunnel *api.TunnelTimers `json:"tunnel,omitempty"`
	// StatusListen serves /metrics (default DefaultStatusListen,
	// loopback; "off": none).
	StatusListen string `json:"status_listen,omitempty"`
	// Ready, not from the file, is called once every listener serves
	// and again after each reload is applied (systemd's READY=1, which
	// ends the RELOADING=1 a reload starts with).
	Ready func() `json:"-"`
}

// LoadConfig reads and checks a borrower config (at most 64 KiB): every
// problem of the file is in the one error it returns.
func LoadConfig(path string) (Config, error) {
	c, r, err := ReadConfig(path)
	if err != nil {
		return Config{}, err
	}
	return c, r.Err()
}

// ReadConfig reads a borrower config strictly and checks what can be
// checked without touching anything else; the Report holds every
// problem, the error only a file that could not be read.
func ReadConfig(path string) (Config, *configfile.Report, error) {
	c := Config{KeeperPort: 7070, LeaseHours: 24, PollSeconds: 2}
	// Strict: a misspelt key must not leave a setting at its default.
	r, err := configfile.Load("borrower config", path, 64<<10, &c)
	if err != nil {
		return Config{}, r, err
	}
	c.check(r)
	return c, r, nil
}

// check records every problem of c's values in r and fills defaults.
func (c *Config) check(r *configfile.Report) {
	r.Required(map[string]string{"dir": c.Dir, "lender_url": c.LenderURL, "m2m_cert": c.M2MCert,
		"m2m_key": c.M2MKey, "m2m_ca": c.M2MCA, "borrower_ca": c.BorrowerCA, "gateway": c.Gateway,
		"image_listen": c.ImageListen, "image_url": c.ImageURL, "image_cert": c.ImageCert,
		"image_key": c.ImageKey, "tunnel_pool": c.TunnelPool, "nfs_server": c.NFSServer, "nfs_export": c.NFSExport})
	if c.StatusListen != "" && c.StatusListen != "off" {
		if _, _, err := net.SplitHostPort(c.StatusListen); err != nil {
			r.Errorf("status_listen", c.StatusListen, "want ADDRESS:PORT for /metrics (default %s), or off", DefaultStatusListen)
		}
	}
	if c.LenderURL != "" {
		if u, err := url.Parse(c.LenderURL); err != nil || u.Scheme != "https" || u.Host == "" {
			r.Errorf("lender_url", c.LenderURL, "want https://ADDRESS:PORT, the lender's m2m_listen")
		}
	}
	if c.ImageURL != "" {
		if u, err := url.Parse(c.ImageURL); err != nil || u.Scheme != "https" || u.Host == "" {
			r.Errorf("image_url", c.ImageURL, "want https://ADDRESS:PORT, how lent servers reach image_listen through the tunnel")
		}
	}
	for _, f := range [][2]string{{"image_listen", c.ImageListen}, {"gateway", c.Gateway}} {
		if f[1] != "" {
			if _, _, err := net.SplitHostPort(f[1]); err != nil {
				r.Errorf(f[0], f[1], "want ADDRESS:PORT")
			}
		}
	}
	pool, poolErr := netip.ParsePrefix(c.TunnelPool)
	if c.TunnelPool != "" && poolErr != nil {
		r.Errorf("tunnel_pool", c.TunnelPool, "want an IPv4 prefix, e.g. 10.8.1.0/24: %v", poolErr)
	}
	if poolErr == nil {
		// Every lent server guards the pool (the other servers' virtual
		// IPs) fail closed: it must not hold the gateway's outer address.
		if gw, err := netip.ParseAddrPort(c.Gateway); err == nil {
			if err := api.CheckTunnelPool(pool.Masked(), api.PathAddr{Name: "the gateway", Addr: gw.Addr()}); err != nil {
				r.Errorf("tunnel_pool", c.TunnelPool, "%v", err)
			}
		}
	}
	if (c.KeeperClientCert == "") != (c.KeeperClientKey == "") {
		r.Errorf("keeper_client_key", c.KeeperClientKey, "set both keeper_client_cert and keeper_client_key, or neither (keeper_client_cert is %q)", c.KeeperClientCert)
	}
	// A lease the lender would refuse (api.MaxDuration) is refused here,
	// where the operator can read which setting is wrong.
	if c.LeaseSeconds != 0 && (c.LeaseSeconds < 60 || c.LeaseSeconds > api.MaxDuration) {
		r.Errorf("lease_seconds", c.LeaseSeconds, "want 0 (use lease_hours) or 60 to %d (90 days)", api.MaxDuration)
	}
	if c.LeaseSeconds == 0 && (c.LeaseHours < 1 || c.LeaseHours > api.MaxDuration/3600) {
		r.Errorf("lease_hours", c.LeaseHours, "want 1 to %d (90 days)", api.MaxDuration/3600)
	}
	if c.PollSeconds < 1 || c.PollSeconds > 3600 {
		r.Errorf("poll_seconds", c.PollSeconds, "want 1 to 3600 (how often leases are refreshed from the lender)")
	}
	if c.RootCopies < 0 || c.RootCopies > 64 {
		r.Errorf("root_copies", c.RootCopies, "want 0 (the default, %d) to 64", DefaultRootCopies)
	}
	if c.ImageStallSeconds < 0 {
		r.Errorf("image_stall_seconds", c.ImageStallSeconds, "want 0 (the default, 60) or more")
	}
	if c.KeeperTLSPort < 0 || c.KeeperTLSPort > 65535 {
		r.Errorf("keeper_tls_port", c.KeeperTLSPort, "not a port")
	}
	if c.Tunnel != nil {
		r.Add("", c.Tunnel.Validate("tunnel"))
	}
	c.checkGateway(r)
	c.checkExports(r, pool, poolErr == nil)
}

// Defaults of the export settings.
const (
	defaultGaneshaPidFile      = "/run/ganesha/ganesha.pid"
	defaultGaneshaExportIDBase = 1000
	defaultKernelExportOptions = "rw,sync,no_subtree_check,no_root_squash,sec=sys"
)

// checkExports checks the NFS server settings: strictly, since they end
// up in another program's configuration or command line.
func (c *Config) checkExports(r *configfile.Report, pool netip.Prefix, poolOK bool) {
	if c.Dir != "" && !filepath.IsAbs(c.Dir) {
		r.Errorf("dir", c.Dir, "want an absolute path (the NFS server is told paths under it)")
	} else if c.Dir != "" {
		r.Add("dir", checkExportPath(c.Dir))
	}
	if c.NFSExport != "" {
		r.Add("nfs_export", checkExportPath(c.NFSExport))
	}
	n := 0
	if poolOK {
		pool = pool.Masked()
		if !pool.Addr().Is4() || pool.Bits() > 30 {
			r.Errorf("tunnel_pool", pool.String(), "want an IPv4 prefix of /30 or shorter (each lent server gets one address of it)")
			poolOK = false
		} else {
			n = 1 << (32 - pool.Bits())
		}
	}
	ganesha := c.GaneshaExportsFile != "" || c.GaneshaPidFile != "" || c.GaneshaExportIDBase != 0
	switch c.NFSExports {
	case "ganesha":
		if err := checkExportPath(c.GaneshaExportsFile); err != nil {
			r.Errorf("ganesha_exports_file", nil, "nfs_exports ganesha: %v", err)
		}
		if c.GaneshaPidFile != "" && !filepath.IsAbs(c.GaneshaPidFile) {
			r.Errorf("ganesha_pid_file", c.GaneshaPidFile, "want an absolute path")
		}
		if base := c.exportIDBase(); poolOK && (base < 1 || base+n-1 > 65535) {
			r.Errorf("ganesha_export_id_base", base, "with tunnel_pool %s (%d addresses): export ids must stay within 1-65535", pool, n)
		}
	case "kernel":
		if ganesha {
			r.Errorf("nfs_exports", c.NFSExports, "ganesha_* settings are set but nfs_exports is kernel")
		}
		if c.Dir != "" && c.NFSExport != RootsDir(c.Dir) {
			r.Errorf("nfs_export", c.NFSExport, "nfs_exports kernel: the kernel NFS server exports real paths: want %q (dir/roots)", RootsDir(c.Dir))
		}
		if o := c.kernelExportOptions(); o == "" || strings.Trim(o, "abcdefghijklmnopqrstuvwxyz0123456789_=,:") != "" {
			r.Errorf("kernel_export_options", o, "want exportfs options, [a-z0-9_=,:]")
		}
	case "none":
		if ganesha || c.KernelExportOptions != "" {
			r.Errorf("nfs_exports", c.NFSExports, "export settings are set but nfs_exports is none")
		}
	case "":
		r.Errorf("nfs_exports", nil, "empty: want ganesha or kernel (the borrower exports each root to its server alone), or none (you restrict the exports yourself)")
	default:
		r.Errorf("nfs_exports", c.NFSExports, "want ganesha, kernel or none")
	}
	if c.NFSExports != "kernel" && c.NFSExports != "" && c.KernelExportOptions != "" {
		r.Errorf("kernel_export_options", c.KernelExportOptions, "set but nfs_exports is %s", c.NFSExports)
	}
}

// checkExportPath refuses what is not a clean absolute path or could
// break out of a quoted value of ganesha's configuration or an exportfs
// argument.
func checkExportPath(p string) error {
	if p == "" || !filepath.IsAbs(p) || filepath.Clean(p) != p || len(p) > 1024 {
		return fmt.Errorf("%.200q: want a clean absolute path", p)
	}
	for i, r := range p {
		if r < 0x20 || r == 0x7f || strings.ContainsRune("\"\\;{}#:(), \t*?", r) {
			return fmt.Errorf("%.200q: character %q at %d not allowed", p, r, i)
		}
	}
	return nil
}

func (c Config) ganeshaPidFile() string {
	if c.GaneshaPidFile == "" {
		return defaultGaneshaPidFile
	}
	return c.GaneshaPidFile
}

func (c Config) exportIDBase() int {
	if c.GaneshaExportIDBase == 0 {
		return defaultGaneshaExportIDBase
	}
	return c.GaneshaExportIDBase
}

// exportID is the ganesha Export_Id of the export for tunnel address a:
// fixed by the address, which no two unfinished leases share.
func (c Config) exportID(pool netip.Prefix, a netip.Addr) int {
	p, x := pool.Addr().As4(), a.As4()
	return c.exportIDBase() + int(binary.BigEndian.Uint32(x[:])-binary.BigEndian.Uint32(p[:]))
}

func (c Config) kernelExportOptions() string {
	if c.KernelExportOptions == "" {
		return defaultKernelExportOptions
	}
	return c.KernelExportOptions
}

// checkGateway checks the settings of the chosen gateway kind.
func (c *Config) checkGateway(r *configfile.Report) {
	switch c.GatewayKind {
	case "", "ferry":
		c.GatewayKind = "ferry"
		if c.VICISocket != "" {
			r.Errorf("vici_socket", c.VICISocket, "set but gateway_kind is ferry; want gateway_kind strongswan")
		}
		if c.GatewayCRLFile != "" && !filepath.IsAbs(c.GatewayCRLFile) {
			r.Errorf("gateway_crl_file", c.GatewayCRLFile, "want an absolute path")
		}
		return
	case "strongswan":
	default:
		r.Errorf("gateway_kind", c.GatewayKind, "want ferry or strongswan")
		return
	}
	if c.SwanPool == "" {
		c.SwanPool = "ferry-borrower"
	}
	if c.AllowFile != "" || c.GatewayStatus != "" || c.GatewayCRLFile != "" {
		r.Errorf("gateway_kind", c.GatewayKind, "allow_file, gateway_status and gateway_crl_file are ferry gateway's; gateway_kind strongswan uses vici_socket")
	}
	for _, f := range [][2]string{{"vici_socket", c.VICISocket}, {"lender_ca", c.LenderCA}} {
		if f[1] == "" {
			r.Errorf(f[0], nil, "empty: gateway_kind strongswan needs it")
		}
	}
	if len(c.SwanLocalTS) == 0 {
		r.Errorf("swan_local_ts", nil, "empty: gateway_kind strongswan needs it, or lent servers could reach nothing")
	}
	pool, poolErr := netip.ParsePrefix(c.TunnelPool)
	for i, ts := range c.SwanLocalTS {
		p, err := netip.ParsePrefix(ts)
		if err != nil {
			r.Errorf(fmt.Sprintf("swan_local_ts[%d]", i), ts, "%v", err)
		} else if poolErr == nil && p.Overlaps(pool) {
			// ferry gateway drops server-to-server packets itself
			// (esp.Plane.Isolate); charon forwards what its policies allow.
			r.Warnf(fmt.Sprintf("swan_local_ts[%d]", i), ts, "overlaps tunnel_pool %s: charon's policies let one lent server reach another through the gateway; keep the pool out of it (or drop forwarding between pool addresses on the gateway host)", pool.Masked())
		}
	}
}

// leaseDuration is what the borrower asks the lender for.
func (c Config) leaseDuration() time.Duration {
	if c.LeaseSeconds > 0 {
		return time.Duration(c.LeaseSeconds) * time.Second
	}
	return time.Duration(c.LeaseHours) * time.Hour
}

// shutdownWait bounds the wait for servers to leave the gateway at return.
func (c Config) shutdownWait() time.Duration {
	if c.ShutdownWaitSeconds <= 0 {
		return 60 * time.Second
	}
	return time.Duration(c.ShutdownWaitSeconds) * time.Second
}

// shutdownGrace is the time a server that left the gateway gets to power
// off before the lender cuts power: its keeper leaves as init's last step.
func (c Config) shutdownGrace() time.Duration {
	switch {
	case c.ShutdownGraceMS < 0:
		return 0
	case c.ShutdownGraceMS == 0:
		return 3 * time.Second
	}
	return time.Duration(c.ShutdownGraceMS) * time.Millisecond
}

func (c Config) imageStall() time.Duration {
	if c.ImageStallSeconds <= 0 {
		return defaultImageStall
	}
	return time.Duration(c.ImageStallSeconds) * time.Second
}

func (c Config) keeperTLSPort() int {
	if c.KeeperTLSPort == 0 {
		return 7071
	}
	return c.KeeperTLSPort
}

func (c Config) poll() time.Duration { return time.Duration(c.PollSeconds) * time.Second }

// StorePath, AdminSocket, ImagesDir, RootsDir and ArchiveDir are under dir.
func StorePath(dir string) string   { return filepath.Join(dir, "borrower.db") }
func AdminSocket(dir string) string { return filepath.Join(dir, "admin.sock") }
func ImagesDir(dir string) string   { return filepath.Join(dir, "images") }
func RootsDir(dir string) string    { return filepath.Join(dir, "roots") }
func ArchiveDir(dir string) string  { return filepath.Join(dir, "archive") }

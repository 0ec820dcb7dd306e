// Package borrower is the borrower's manager: it keeps image B (through
// catalog), asks a lender for servers, prepares one NFS root per server
// (through rootprep), tells the gateway which one-time keys may connect
// (through gatewayctl), serves image B to lent servers and returns them.
//
// Every lease is first recorded locally with its idempotency key, then
// driven step by step; each step's result is one store transaction, so a
// borrower killed at any moment resumes the lease where it stopped and a
// retried request never leases twice.
package borrower

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"ferry/api"
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
	Archive             bool   `json:"archive"`     // archive roots at return, else delete
	KeeperPort          int    `json:"keeper_port"` // the keepers' plain-HTTP GET /status
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
}

// LoadConfig reads and checks a borrower config (at most 64 KiB).
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("borrower config: %w", err)
	}
	if len(data) > 64<<10 {
		return Config{}, fmt.Errorf("borrower config %s: %d bytes, over 64 KiB", path, len(data))
	}
	c := Config{KeeperPort: 7070, LeaseHours: 24, PollSeconds: 2}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields() // a misspelt key must not leave a setting at its default
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("borrower config %s: %w", path, err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("borrower config %s: more than one JSON value", path)
	}
	for field, v := range map[string]string{"dir": c.Dir, "lender_url": c.LenderURL, "m2m_cert": c.M2MCert,
		"m2m_key": c.M2MKey, "m2m_ca": c.M2MCA, "borrower_ca": c.BorrowerCA, "gateway": c.Gateway,
		"image_listen": c.ImageListen, "image_url": c.ImageURL, "image_cert": c.ImageCert,
		"image_key": c.ImageKey, "tunnel_pool": c.TunnelPool, "nfs_server": c.NFSServer, "nfs_export": c.NFSExport} {
		if v == "" {
			return Config{}, fmt.Errorf("borrower config %s: %s is empty", path, field)
		}
	}
	if _, err := netip.ParsePrefix(c.TunnelPool); err != nil {
		return Config{}, fmt.Errorf("borrower config %s: tunnel_pool: %w", path, err)
	}
	if (c.KeeperClientCert == "") != (c.KeeperClientKey == "") {
		return Config{}, fmt.Errorf("borrower config %s: keeper_client_cert %q and keeper_client_key %q: set both or neither",
			path, c.KeeperClientCert, c.KeeperClientKey)
	}
	if c.ImageStallSeconds < 0 {
		return Config{}, fmt.Errorf("borrower config %s: image_stall_seconds %d: want 0 (the default, 60) or more", path, c.ImageStallSeconds)
	}
	if c.KeeperTLSPort < 0 || c.KeeperTLSPort > 65535 {
		return Config{}, fmt.Errorf("borrower config %s: keeper_tls_port %d: not a port", path, c.KeeperTLSPort)
	}
	if c.Tunnel != nil {
		if err := c.Tunnel.Validate("tunnel"); err != nil {
			return Config{}, fmt.Errorf("borrower config %s: %w", path, err)
		}
	}
	if err := c.checkGateway(); err != nil {
		return Config{}, fmt.Errorf("borrower config %s: %w", path, err)
	}
	if err := c.checkExports(); err != nil {
		return Config{}, fmt.Errorf("borrower config %s: %w", path, err)
	}
	return c, nil
}

// Defaults of the export settings.
const (
	defaultGaneshaPidFile      = "/run/ganesha/ganesha.pid"
	defaultGaneshaExportIDBase = 1000
	defaultKernelExportOptions = "rw,sync,no_subtree_check,no_root_squash,sec=sys"
)

// checkExports checks the NFS server settings: strictly, since they end
// up in another program's configuration or command line.
func (c *Config) checkExports() error {
	if !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("dir %.200q: want an absolute path (the NFS server is told paths under it)", c.Dir)
	}
	for field, v := range map[string]string{"dir": c.Dir, "nfs_export": c.NFSExport} {
		if err := checkExportPath(v); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
	}
	pool := netip.MustParsePrefix(c.TunnelPool).Masked()
	if !pool.Addr().Is4() || pool.Bits() > 30 {
		return fmt.Errorf("tunnel_pool %s: want an IPv4 prefix of /30 or shorter (each lent server gets one address of it)", pool)
	}
	ganesha := c.GaneshaExportsFile != "" || c.GaneshaPidFile != "" || c.GaneshaExportIDBase != 0
	switch c.NFSExports {
	case "ganesha":
		if err := checkExportPath(c.GaneshaExportsFile); err != nil {
			return fmt.Errorf("nfs_exports ganesha: ganesha_exports_file: %w", err)
		}
		if c.GaneshaPidFile != "" && !filepath.IsAbs(c.GaneshaPidFile) {
			return fmt.Errorf("ganesha_pid_file %.200q: want an absolute path", c.GaneshaPidFile)
		}
		base, n := c.exportIDBase(), 1<<(32-pool.Bits())
		if base < 1 || base+n-1 > 65535 {
			return fmt.Errorf("ganesha_export_id_base %d with tunnel_pool %s (%d addresses): export ids must stay within 1-65535", base, pool, n)
		}
	case "kernel":
		if ganesha {
			return fmt.Errorf("ganesha_* settings are set but nfs_exports is kernel")
		}
		if c.NFSExport != RootsDir(c.Dir) {
			return fmt.Errorf("nfs_exports kernel: nfs_export %.200q: the kernel NFS server exports real paths: want %q (dir/roots)", c.NFSExport, RootsDir(c.Dir))
		}
		if o := c.kernelExportOptions(); o == "" || strings.Trim(o, "abcdefghijklmnopqrstuvwxyz0123456789_=,:") != "" {
			return fmt.Errorf("kernel_export_options %.200q: want exportfs options, [a-z0-9_=,:]", o)
		}
	case "none":
		if ganesha || c.KernelExportOptions != "" {
			return fmt.Errorf("export settings are set but nfs_exports is none")
		}
	case "":
		return fmt.Errorf("nfs_exports is empty: want ganesha or kernel (the borrower exports each root to its server alone), or none (you restrict the exports yourself)")
	default:
		return fmt.Errorf("nfs_exports %.40q: want ganesha, kernel or none", c.NFSExports)
	}
	if c.NFSExports != "kernel" && c.KernelExportOptions != "" {
		return fmt.Errorf("kernel_export_options is set but nfs_exports is %s", c.NFSExports)
	}
	return nil
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
func (c *Config) checkGateway() error {
	switch c.GatewayKind {
	case "", "ferry":
		c.GatewayKind = "ferry"
		if c.VICISocket != "" {
			return fmt.Errorf("vici_socket is set but gateway_kind is ferry; want gateway_kind strongswan")
		}
		if c.GatewayCRLFile != "" && !filepath.IsAbs(c.GatewayCRLFile) {
			return fmt.Errorf("gateway_crl_file %.200q: want an absolute path", c.GatewayCRLFile)
		}
		return nil
	case "strongswan":
	default:
		return fmt.Errorf("gateway_kind %.40q: want ferry or strongswan", c.GatewayKind)
	}
	if c.SwanPool == "" {
		c.SwanPool = "ferry-borrower"
	}
	if c.AllowFile != "" || c.GatewayStatus != "" || c.GatewayCRLFile != "" {
		return fmt.Errorf("allow_file, gateway_status and gateway_crl_file are ferry gateway's; gateway_kind strongswan uses vici_socket")
	}
	for field, v := range map[string]string{"vici_socket": c.VICISocket, "lender_ca": c.LenderCA} {
		if v == "" {
			return fmt.Errorf("gateway_kind strongswan: %s is empty", field)
		}
	}
	if len(c.SwanLocalTS) == 0 {
		return fmt.Errorf("gateway_kind strongswan: swan_local_ts is empty: lent servers could reach nothing")
	}
	for _, ts := range c.SwanLocalTS {
		if _, err := netip.ParsePrefix(ts); err != nil {
			return fmt.Errorf("swan_local_ts %.80q: %w", ts, err)
		}
	}
	return nil
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

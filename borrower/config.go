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
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
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
	GatewayKind   string   `json:"gateway_kind"`
	AllowFile     string   `json:"allow_file"` // ferry: empty means no gateway is told
	GatewayStatus string   `json:"gateway_status"`
	VICISocket    string   `json:"vici_socket"`
	SwanPool      string   `json:"swan_pool"`
	SwanLocalTS   []string `json:"swan_local_ts"`
	LenderCA      string   `json:"lender_ca"`
	// Image B is served on ImageListen (HTTPS with ImageCert/ImageKey) as
	// ImageURL/NAME/{vmlinuz,initrd.img}, only to the virtual IP the
	// gateway gave a server of an active lease of that image.
	ImageListen string `json:"image_listen"`
	ImageURL    string `json:"image_url"`
	ImageCert   string `json:"image_cert"`
	ImageKey    string `json:"image_key"`
	TunnelPool  string `json:"tunnel_pool"`
	// NFS: the server lent machines mount and the export that holds Dir/roots.
	NFSServer       string `json:"nfs_server"`
	NFSExport       string `json:"nfs_export"`
	DefaultTemplate string `json:"default_template"`
	Archive         bool   `json:"archive"`     // archive roots at return, else delete
	KeeperPort      int    `json:"keeper_port"` // the keepers' plain-HTTP GET /status
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
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("borrower config %s: %w", path, err)
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
	return c, nil
}

// checkGateway checks the settings of the chosen gateway kind.
func (c *Config) checkGateway() error {
	switch c.GatewayKind {
	case "", "ferry":
		c.GatewayKind = "ferry"
		if c.VICISocket != "" {
			return fmt.Errorf("vici_socket is set but gateway_kind is ferry; want gateway_kind strongswan")
		}
		return nil
	case "strongswan":
	default:
		return fmt.Errorf("gateway_kind %.40q: want ferry or strongswan", c.GatewayKind)
	}
	if c.SwanPool == "" {
		c.SwanPool = "ferry-borrower"
	}
	if c.AllowFile != "" || c.GatewayStatus != "" {
		return fmt.Errorf("allow_file and gateway_status are ferry gateway's; gateway_kind strongswan uses vici_socket")
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

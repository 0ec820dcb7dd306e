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
	// AllowFile is ferry gateway's allow list (gatewayctl); empty: none.
	AllowFile string `json:"allow_file"`
	// Image B is served on ImageListen (HTTPS with ImageCert/ImageKey) as
	// ImageURL/NAME/{vmlinuz,initrd.img}, only to TunnelPool addresses
	// while a lease is active.
	ImageListen string `json:"image_listen"`
	ImageURL    string `json:"image_url"`
	ImageCert   string `json:"image_cert"`
	ImageKey    string `json:"image_key"`
	TunnelPool  string `json:"tunnel_pool"`
	// NFS: the server lent machines mount and the export that holds Dir/roots.
	NFSServer       string `json:"nfs_server"`
	NFSExport       string `json:"nfs_export"`
	DefaultTemplate string `json:"default_template"`
	Archive         bool   `json:"archive"` // archive roots at return, else delete
	KeeperPort      int    `json:"keeper_port"`
	LeaseHours      int    `json:"lease_hours"`
	PollSeconds     int    `json:"poll_seconds"`
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
	return c, nil
}

func (c Config) poll() time.Duration { return time.Duration(c.PollSeconds) * time.Second }

// StorePath, AdminSocket, ImagesDir, RootsDir and ArchiveDir are under dir.
func StorePath(dir string) string   { return filepath.Join(dir, "borrower.db") }
func AdminSocket(dir string) string { return filepath.Join(dir, "admin.sock") }
func ImagesDir(dir string) string   { return filepath.Join(dir, "images") }
func RootsDir(dir string) string    { return filepath.Join(dir, "roots") }
func ArchiveDir(dir string) string  { return filepath.Join(dir, "archive") }

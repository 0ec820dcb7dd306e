package lender

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Config is `ferry lender serve --config FILE`, JSON.
type Config struct {
	// Dir holds the CA (see lenderca), the store and the admin socket.
	Dir string `json:"dir"`
	// AgentListen serves enrollment, phases, the CRL and /metrics over
	// HTTPS with the CA-signed tls.pem; PublicURL is how agents reach it.
	AgentListen string `json:"agent_listen"`
	PublicURL   string `json:"public_url"`
	// M2MListen serves borrower managers over mutual TLS.
	M2MListen string `json:"m2m_listen"`
	M2MCert   string `json:"m2m_cert"`
	M2MKey    string `json:"m2m_key"`
	// Borrowers are the organisations the m2m listener admits; each owns
	// the leases its managers make and sees no other's.
	Borrowers []BorrowerConfig `json:"borrowers,omitempty"`
	// M2MClientCA (older configurations) admits every client certificate
	// of this CA as one borrower, DefaultBorrower.
	M2MClientCA string `json:"m2m_client_ca,omitempty"`
	// TokenTTL bounds how long a boot may take to enroll (default 10m).
	TokenTTL Duration `json:"token_ttl"`
	// Netboot, when set, serves DHCP/ProxyDHCP, TFTP and the iPXE script.
	Netboot *NetbootConfig `json:"netboot,omitempty"`
}

// Duration is a time.Duration written as "10m" in JSON.
type Duration time.Duration

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"10m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// LoadConfig reads and checks a config file (at most 64 KiB).
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("lender config: %w", err)
	}
	if len(data) > 64<<10 {
		return Config{}, fmt.Errorf("lender config %s: %d bytes, over 64 KiB", path, len(data))
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("lender config %s: %w", path, err)
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = Duration(10 * time.Minute)
	}
	for field, v := range map[string]string{"dir": c.Dir, "agent_listen": c.AgentListen,
		"public_url": c.PublicURL, "m2m_listen": c.M2MListen, "m2m_cert": c.M2MCert,
		"m2m_key": c.M2MKey} {
		if v == "" {
			return Config{}, fmt.Errorf("lender config %s: %s is empty", path, field)
		}
	}
	if err := c.checkBorrowers(); err != nil {
		return Config{}, fmt.Errorf("lender config %s: %w", path, err)
	}
	return c, nil
}

// StorePath is the store file under dir.
func StorePath(dir string) string { return filepath.Join(dir, "lender.db") }

// AdminSocket is the CLI's socket under dir.
func AdminSocket(dir string) string { return filepath.Join(dir, "admin.sock") }

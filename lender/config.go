package lender

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"ferry/configfile"
)

// Config is `ferry lender serve --config FILE`, JSON.
type Config struct {
	// Dir holds the CA (see lenderca), the store and the admin socket.
	Dir string `json:"dir"`
	// AgentListen serves enrollment, phases and the CRL over
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
	// BorrowersDir admits one borrower per NAME.pem in it: NAME, whose
	// client certificates chain to that CA (`ferry lender borrower add`
	// writes them; a reload picks them up).
	BorrowersDir string `json:"borrowers_dir,omitempty"`
	// dirBorrowers are those of BorrowersDir, read by ReadConfig.
	dirBorrowers []BorrowerConfig
	// M2MClientCA (older configurations) admits every client certificate
	// of this CA as one borrower, DefaultBorrower.
	M2MClientCA string `json:"m2m_client_ca,omitempty"`
	// TokenTTL bounds how long a boot may take to enroll (default 10m).
	TokenTTL Duration `json:"token_ttl"`
	// Netboot, when set, serves DHCP/ProxyDHCP, TFTP and the iPXE script.
	Netboot *NetbootConfig `json:"netboot,omitempty"`
	// StatusListen serves /metrics and the read-only status page
	// (default DefaultStatusListen, loopback; "off": none). Keep it off
	// the PXE side: it shows every lease of every borrower.
	StatusListen string `json:"status_listen,omitempty"`
	// Ready, not from the file, is called once every listener serves
	// and again after each reload is applied (systemd's READY=1, which
	// ends the RELOADING=1 a reload starts with).
	Ready func() `json:"-"`
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

// LoadConfig reads and checks a config file (at most 64 KiB): every
// problem of the file is in the one error it returns.
func LoadConfig(path string) (Config, error) {
	c, r, err := ReadConfig(path)
	if err != nil {
		return Config{}, err
	}
	return c, r.Err()
}

// ReadConfig reads a config file strictly and checks what can be checked
// without touching anything else; the Report holds every problem and
// warning, and the error only a file that could not be read.
func ReadConfig(path string) (Config, *configfile.Report, error) {
	var c Config
	r, err := configfile.Load("lender config", path, 64<<10, &c)
	if err != nil {
		return Config{}, r, err
	}
	c.readBorrowersDir(r)
	c.check(r)
	return c, r, nil
}

// readBorrowersDir lists the borrowers of borrowers_dir: NAME.pem each.
func (c *Config) readBorrowersDir(r *configfile.Report) {
	if c.BorrowersDir == "" {
		return
	}
	ents, err := os.ReadDir(c.BorrowersDir)
	if err != nil {
		r.Errorf("borrowers_dir", c.BorrowersDir, "want a directory of NAME.pem borrower CAs: %v", err)
		return
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".pem")
		if !ok || e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		c.dirBorrowers = append(c.dirBorrowers, BorrowerConfig{Name: name, CA: filepath.Join(c.BorrowersDir, e.Name())})
	}
}

// check records every problem of c's values in r and fills defaults.
func (c *Config) check(r *configfile.Report) {
	if c.TokenTTL == 0 {
		c.TokenTTL = Duration(10 * time.Minute)
	}
	r.Required(map[string]string{"dir": c.Dir, "agent_listen": c.AgentListen,
		"public_url": c.PublicURL, "m2m_listen": c.M2MListen, "m2m_cert": c.M2MCert, "m2m_key": c.M2MKey})
	if c.StatusListen != "" && c.StatusListen != "off" {
		if _, _, err := net.SplitHostPort(c.StatusListen); err != nil {
			r.Errorf("status_listen", c.StatusListen, "want ADDRESS:PORT for /metrics and the status page (default %s), or off", DefaultStatusListen)
		}
	}
	for _, f := range [][2]string{{"agent_listen", c.AgentListen}, {"m2m_listen", c.M2MListen}} {
		if f[1] != "" {
			if _, _, err := net.SplitHostPort(f[1]); err != nil {
				r.Errorf(f[0], f[1], "want ADDRESS:PORT to listen on")
			}
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || u.Scheme != "https" || u.Host == "" {
			r.Errorf("public_url", c.PublicURL, "want https://ADDRESS:PORT, how agents reach agent_listen")
		}
	}
	if ttl := time.Duration(c.TokenTTL); ttl < time.Minute || ttl > 24*time.Hour {
		r.Errorf("token_ttl", ttl.String(), "want between 1m and 24h: how long a boot may take to enroll")
	}
	c.checkBorrowers(r)
	if c.Netboot != nil {
		c.Netboot.check(r)
	}
}

// StorePath is the store file under dir.
func StorePath(dir string) string { return filepath.Join(dir, "lender.db") }

// AdminSocket is the CLI's socket under dir.
func AdminSocket(dir string) string { return filepath.Join(dir, "admin.sock") }

// Package strongswan starts and stops a strongSwan charon for ferry's
// interop tests: one charon per network namespace, with its own /run,
// config, credentials and vici socket in a work directory, driven by
// charon.sh (which the lab also uses by hand). Tests call Available first
// and skip, saying why, when charon is not installed.
package strongswan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Paths of the Debian packages (scripts/ci-deps.sh installs them).
const (
	CharonPath  = "/usr/lib/ipsec/charon"
	SwanctlPath = "/usr/sbin/swanctl"
	gcmPlugin   = "/usr/lib/ipsec/plugins/libstrongswan-gcm.so"
	sslPlugin   = "/usr/lib/ipsec/plugins/libstrongswan-openssl.so"
)

// Available says why charon cannot run here, or nil.
func Available() error {
	for _, p := range []string{CharonPath, SwanctlPath, gcmPlugin, sslPlugin} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("strongswan: %s missing (run scripts/ci-deps.sh): %w", p, err)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("strongswan: needs root for network namespaces")
	}
	return nil
}

// Options describe one charon.
type Options struct {
	NetNS string // network namespace to run in (must exist)
	Dir   string // work directory: config, credentials, vici socket, log
	// Swanctl is the swanctl.conf text, one setting a line. Certificate
	// and key names in it refer to the files below.
	Swanctl string
	CACerts map[string][]byte // x509ca/NAME -> PEM
	Certs   map[string][]byte // x509/NAME -> PEM
	Keys    map[string][]byte // private/NAME -> PEM (written 0600)
}

// Charon is a running strongSwan daemon.
type Charon struct {
	dir string
}

// Start writes the credentials and swanctl.conf into o.Dir, starts charon
// in o.NetNS and loads the configuration.
func Start(ctx context.Context, o Options) (*Charon, error) {
	if err := writeCreds(o); err != nil {
		return nil, err
	}
	conf := filepath.Join(o.Dir, "swanctl.conf")
	if err := os.WriteFile(conf, []byte(o.Swanctl), 0o644); err != nil {
		return nil, fmt.Errorf("strongswan: %w", err)
	}
	c := &Charon{dir: o.Dir}
	if out, err := script(ctx, "start", o.NetNS, o.Dir, conf); err != nil {
		c.Stop()
		return nil, fmt.Errorf("strongswan: start charon in %s: %w\n%s\nlog:\n%s", o.NetNS, err, out, c.Log())
	}
	return c, nil
}

func writeCreds(o Options) error {
	for sub, files := range map[string]map[string][]byte{"x509ca": o.CACerts, "x509": o.Certs, "private": o.Keys} {
		d := filepath.Join(o.Dir, sub)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("strongswan: %w", err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(d, name), data, 0o600); err != nil {
				return fmt.Errorf("strongswan: %w", err)
			}
		}
	}
	return nil
}

// Swanctl runs `swanctl OP ARGS...` against this charon.
func (c *Charon) Swanctl(ctx context.Context, op string, args ...string) (string, error) {
	return script(ctx, append([]string{"swanctl", c.dir, op}, args...)...)
}

// Log is charon's log so far, for test failures.
func (c *Charon) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "charon.log"))
	return string(b)
}

// Stop ends charon.
func (c *Charon) Stop() {
	script(context.Background(), "stop", c.dir)
}

func script(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(here(), "charon.sh"), args...).CombinedOutput()
	return string(out), err
}

// here is the directory of this source file, where charon.sh lives.
func here() string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Dir(f)
}

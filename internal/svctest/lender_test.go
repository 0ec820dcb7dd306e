package svctest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freeAddr is a loopback TCP address nothing listens on, on an address of
// 127/8 of its own: between this close and the service's bind, another
// test package (go test runs them at once) may take the same ephemeral
// port on 127.0.0.1, and once did (bind: address already in use).
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		a := fmt.Sprintf("127.%d.%d.%d", 20+rand.IntN(200), rand.IntN(250), 1+rand.IntN(250))
		ln, err := net.Listen("tcp", a+":0")
		if err != nil {
			continue
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	t.Fatal("no free loopback address")
	return ""
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(ferryBin(), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ferry %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lenderSite is what `ferry lender init` and `lender borrower add` make,
// its listeners moved to free loopback ports.
type lenderSite struct {
	dir, config, agent string
}

func newLenderSite(t *testing.T) *lenderSite {
	t.Helper()
	root := t.TempDir()
	s := &lenderSite{dir: filepath.Join(root, "lender"), config: filepath.Join(root, "lender", "lender.json"), agent: freeAddr(t)}
	run(t, "lender", "init", "--dir", s.dir, "--name", "bigco", "--host", "127.0.0.1", "--m2m", freeAddr(t))
	ca, key := filepath.Join(root, "acme-ca.pem"), filepath.Join(root, "acme-ca.key")
	run(t, "pki", "ca", "--name", "acme", "--cert", ca, "--key", key)
	run(t, "lender", "borrower", "add", "--config", s.config, "acme", ca)
	b, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	c := strings.ReplaceAll(string(b), "127.0.0.1:8443", s.agent)
	c = strings.Replace(c, `"token_ttl": "10m"`, `"token_ttl": "10m", "status_listen": "off"`, 1)
	if c == string(b) || !strings.Contains(c, `"status_listen": "off"`) {
		t.Fatalf("lender.json is not what the test expects:\n%s", b)
	}
	os.WriteFile(s.config, []byte(c), 0o640)
	return s
}

// `systemctl reload ferry-lender`: RELOADING=1 with MONOTONIC_USEC, then
// READY=1 once applied; a broken file the same, the error naming the
// file and the setting, and the lender serving on.
func TestLenderReloadTellsSystemd(t *testing.T) {
	s := newLenderSite(t)
	n := newNotifySocket(t)
	p := start(t, exec.Command(ferryBin(), "lender", "serve", "--config", s.config), n)
	n.expect(t, p, "READY=1")
	p.signal(t, syscall.SIGHUP)
	if got := n.next(t, p); !monotonic.MatchString(got) {
		t.Fatalf("reload start: sd_notify %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	n.expect(t, p, "READY=1")
	p.waitLog(t, "lender: configuration reloaded")

	good, _ := os.ReadFile(s.config)
	os.WriteFile(s.config, []byte(strings.Replace(string(good), `"token_ttl": "10m"`, `"token_ttl": "ten minutes"`, 1)), 0o640)
	p.signal(t, syscall.SIGHUP)
	n.expect(t, p, "RELOADING=1")
	n.expect(t, p, "READY=1")
	p.waitLog(t, "lender: reload refused, the running configuration stays", s.config, "token_ttl")
	if c := p.countLog("lender: configuration reloaded"); c != 1 {
		t.Fatalf("%d reloads applied, want 1", c)
	}
	p.signal(t, syscall.SIGTERM)
	n.expect(t, p, "STOPPING=1")
	if err := p.stop(15 * time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
}

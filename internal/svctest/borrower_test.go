package svctest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `systemctl reload ferry-borrower`: RELOADING=1 with MONOTONIC_USEC,
// then READY=1 once applied; a broken file the same, the error naming
// the file and the setting, and the borrower serving on. (No lender
// runs: the borrower serves without it, and says so.)
func TestBorrowerReloadTellsSystemd(t *testing.T) {
	root := t.TempDir()
	run(t, "lender", "init", "--dir", filepath.Join(root, "lender"), "--host", "127.0.0.1", "--m2m", freeAddr(t))
	dir := filepath.Join(root, "borrower")
	run(t, "borrower", "init", "--dir", dir, "--name", "acme", "--from-lender", filepath.Join(root, "lender", "for-borrowers"),
		"--gateway", "127.0.0.1", "--lan", "127.0.0.1", "--tunnel-pool", "10.8.1.0/24", "--nfs", "none")
	config := filepath.Join(dir, "borrower.json")
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	img := freeAddr(t)
	c := strings.ReplaceAll(string(b), "127.0.0.1:9444", img)
	c = strings.Replace(c, `"gateway_status": "/run/ferry/gateway.sock"`, `"gateway_status": "`+filepath.Join(root, "gw.sock")+`", "status_listen": "off"`, 1)
	if !strings.Contains(c, img) || !strings.Contains(c, `"status_listen": "off"`) {
		t.Fatalf("borrower.json is not what the test expects:\n%s", b)
	}
	os.WriteFile(config, []byte(c), 0o640)

	n := newNotifySocket(t)
	p := start(t, exec.Command(ferryBin(), "borrower", "serve", "--config", config), n)
	n.expect(t, p, "READY=1")
	p.signal(t, syscall.SIGHUP)
	if got := n.next(t, p); !monotonic.MatchString(got) {
		t.Fatalf("reload start: sd_notify %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	n.expect(t, p, "READY=1")
	p.waitLog(t, "borrower: configuration reloaded")
	if p.countLog("change only at restart") != 0 {
		t.Fatalf("the same file reloaded, yet settings said to wait for a restart:\n%s", p.log)
	}

	os.WriteFile(config, []byte(strings.Replace(c, `"lease_hours": 24`, `"lease_hours": "a day"`, 1)), 0o640)
	p.signal(t, syscall.SIGHUP)
	n.expect(t, p, "RELOADING=1")
	n.expect(t, p, "READY=1")
	p.waitLog(t, "borrower: reload refused, the running configuration stays", config, "lease_hours")
	if c := p.countLog("borrower: configuration reloaded"); c != 1 {
		t.Fatalf("%d reloads applied, want 1", c)
	}
	p.signal(t, syscall.SIGTERM)
	n.expect(t, p, "STOPPING=1")
	if err := p.stop(15 * time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
}

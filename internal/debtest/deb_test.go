package debtest

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/pki"
)

// TestDebInstallsAndTheLenderUnitRuns installs FERRY_DEB into an empty
// root (a dpkg database and a static busybox for the maintainer scripts,
// nothing else), checks what it put where, then runs what an operator
// runs on a new lender from the package: ferry lender init, the unit's
// ExecStart with --check, and the unit's ExecStart itself until it tells
// systemd READY=1, then SIGTERM until STOPPING=1 and a clean exit; then
// borrower init and the gateway unit's ExecStart with --check.
func TestDebInstallsAndTheLenderUnitRuns(t *testing.T) {
	deb := os.Getenv("FERRY_DEB")
	if deb == "" {
		t.Skip("FERRY_DEB names the package to test: make package-test")
	}
	if os.Getuid() != 0 {
		t.Skip("needs root (dpkg --root, chroot, a network namespace)")
	}
	for _, c := range []string{"dpkg", "dpkg-deb", "busybox", "unshare", "chroot", "ip"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("missing %s (scripts/ci-deps.sh)", c)
		}
	}
	root := cleanRoot(t)
	run(t, "dpkg", "--root="+root, "--force-depends", "--install", deb)

	// What dpkg recorded and what landed.
	status := run(t, "dpkg", "--root="+root, "--status", "ferry")
	for _, want := range []string{"Status: install ok installed", "Depends: ipxe"} {
		if !strings.Contains(status, want) {
			t.Errorf("dpkg --status ferry lacks %q:\n%s", want, status)
		}
	}
	conffiles, _ := os.ReadFile(filepath.Join(root, "var/lib/dpkg/info/ferry.conffiles"))
	for _, f := range []string{"/etc/ferry/examples/lender.json", "/etc/ferry/examples/borrower.json", "/etc/ferry/examples/gateway.json"} {
		if !strings.Contains(string(conffiles), f) {
			t.Errorf("%s is not a conffile:\n%s", f, conffiles)
		}
	}
	for _, f := range []string{"usr/bin/ferry", "lib/systemd/system/ferry-lender.service", "lib/systemd/system/ferry-borrower.service",
		"lib/systemd/system/ferry-gateway.service", "usr/share/doc/ferry/copyright"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	// Completions and man pages, which the binary generates (make package
	// takes them when `ferry completion` and `ferry man` exist).
	if err := exec.Command(filepath.Join(root, "usr/bin/ferry"), "completion", "bash").Run(); err == nil {
		for _, f := range []string{"usr/share/bash-completion/completions/ferry", "usr/share/zsh/vendor-completions/_ferry",
			"usr/share/fish/vendor_completions.d/ferry.fish", "usr/share/man/man1/ferry.1.gz", "usr/share/man/man1/ferry-lender.1.gz"} {
			if fi, err := os.Stat(filepath.Join(root, f)); err != nil || fi.Size() == 0 {
				t.Errorf("not packaged though the binary makes it: %s (%v)", f, err)
			}
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "usr/lib/ferry/applets/gateway")); err != nil || l != "/usr/bin/ferry" {
		t.Errorf("applet link gateway -> %q (%v), want /usr/bin/ferry", l, err)
	}
	for _, f := range []string{"usr/bin/kexec", "usr/bin/switch_root", "usr/bin/init", "usr/sbin/init"} {
		if _, err := os.Lstat(filepath.Join(root, f)); err == nil {
			t.Errorf("%s installed: it would shadow kexec-tools, util-linux or the init system", f)
		}
	}
	if out := chroot(t, root, "/usr/lib/ferry/applets/gateway", "--help"); !strings.Contains(out, "gateway --config FILE") {
		t.Errorf("the gateway applet link does not run the gateway:\n%s", out)
	}

	// The lender, as the unit runs it.
	exec := execStart(t, filepath.Join(root, "lib/systemd/system/ferry-lender.service"))
	if exec[0] != "/usr/bin/ferry" {
		t.Fatalf("ExecStart %q does not run /usr/bin/ferry", exec)
	}
	chroot(t, root, "/usr/bin/ferry", "lender", "init", "--name", "bigco", "--host", "192.0.2.1", "--m2m", "198.51.100.5")
	ca, err := pki.NewCA("acme", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "tmp/acme-ca.pem"), ca.CertPEM(), 0o644)
	chroot(t, root, "/usr/bin/ferry", "lender", "borrower", "add", "acme", "/tmp/acme-ca.pem")
	if out := chroot(t, root, append(exec, "--check")...); strings.Contains(out, "problem") {
		t.Errorf("%s --check:\n%s", strings.Join(exec, " "), out)
	}
	serveUnderNotify(t, root, exec)

	// The borrower side on the same root (a second site's files): the
	// gateway unit's command line checks what borrower init wrote.
	chroot(t, root, "/usr/bin/ferry", "borrower", "init", "--name", "acme", "--from-lender", "/var/lib/ferry/lender/for-borrowers",
		"--gateway", "198.51.100.5", "--lan", "192.0.2.1", "--tunnel-pool", "10.8.1.0/24", "--nfs", "none")
	gw := execStart(t, filepath.Join(root, "lib/systemd/system/ferry-gateway.service"))
	if out := chroot(t, root, append(gw, "--check")...); strings.Contains(out, "problem") {
		t.Errorf("%s --check:\n%s", strings.Join(gw, " "), out)
	}
}

// cleanRoot is an empty dpkg root: the database and /bin/sh (a static
// busybox) for the maintainer scripts dpkg runs chrooted.
func cleanRoot(t *testing.T) string {
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "bin", "tmp", "etc", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		os.WriteFile(filepath.Join(root, f), nil, 0o644)
	}
	bb, _ := exec.LookPath("busybox")
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755)
	for _, l := range []string{"sh", "echo", "cat", "ls", "kill"} {
		os.Symlink("busybox", filepath.Join(root, "bin", l))
	}
	return root
}

// execStart is the ExecStart command line of a unit file.
func execStart(t *testing.T, unit string) []string {
	f, err := os.Open(unit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			return strings.Fields(v)
		}
	}
	t.Fatalf("%s has no ExecStart", unit)
	return nil
}

// inNetns runs argv chrooted into root in a new network namespace whose
// loopback carries the template's addresses (agent 192.0.2.1, m2m
// 198.51.100.5).
func inNetns(root string, argv ...string) *exec.Cmd {
	script := `ip link set lo up && ip addr add 192.0.2.1/32 dev lo && ip addr add 198.51.100.5/32 dev lo && exec chroot "$0" "$@"`
	return exec.Command("unshare", append([]string{"--net", "--", "sh", "-c", script, root}, argv...)...)
}

func chroot(t *testing.T, root string, argv ...string) string {
	t.Helper()
	out, err := inNetns(root, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("in the installed root: %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// serveUnderNotify starts argv as systemd would start the unit
// (NOTIFY_SOCKET set), waits for READY=1, sends SIGTERM, and wants
// STOPPING=1 and exit status 0.
func serveUnderNotify(t *testing.T, root string, argv []string) {
	sock := filepath.Join(root, "run", "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := inNetns(root, argv...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=/run/notify")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()
	recv := func(want string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		b := make([]byte, 512)
		n, err := c.Read(b)
		if err != nil || !strings.HasPrefix(string(b[:n]), want) {
			t.Fatalf("waiting for %s: %q %v; output:\n%s", want, b[:n], err, out.String())
		}
	}
	recv("READY=1")
	// unshare execs sh, which execs chroot, which execs ferry: one pid.
	cmd.Process.Signal(syscall.SIGTERM)
	recv("STOPPING=1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("%s ended with %v:\n%s", strings.Join(argv, " "), err, out.String())
		}
	case <-ctx.Done():
		t.Fatalf("no exit 30 s after SIGTERM:\n%s", out.String())
	}
	t.Logf("%s: READY=1, SIGTERM, STOPPING=1, exit 0", strings.Join(argv, " "))
}

// run runs a host command and returns its output.
func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

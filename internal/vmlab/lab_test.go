package vmlab

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// requireLab skips t unless FERRY_LAB is set (make e2e, make demo): the
// lab runs need root, QEMU, the lab's daemons and minutes of CPU each. It
// fails t when a command the run needs is missing (scripts/ci-deps.sh
// installs them all), and when a process the run started outlives it.
func requireLab(t *testing.T, cmds ...string) {
	t.Helper()
	if os.Getenv("FERRY_LAB") == "" {
		t.Skip("lab run under QEMU: set FERRY_LAB=1 (make e2e does; it needs root, QEMU and minutes; run it under flock /tmp/ferry-qemu.lock)")
	}
	NoSurvivors(t) // first: its check runs after every other cleanup
	if os.Geteuid() != 0 {
		t.Fatalf("FERRY_LAB is set but the lab needs root (network namespaces, taps)")
	}
	for _, c := range append([]string{"ip", "qemu-system-x86_64", "busybox", "cpio", "zstd"}, cmds...) {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("missing %s (scripts/ci-deps.sh)", c)
		}
	}
}

// labFerry is the ferry binary the run drives: FERRY_BIN, else one built
// from repo into a temporary directory.
func labFerry(t *testing.T, repo string) string {
	t.Helper()
	if f := os.Getenv("FERRY_BIN"); f != "" {
		return f
	}
	ferry := filepath.Join(t.TempDir(), "ferry")
	cmd := exec.Command("go", "build", "-trimpath", "-o", ferry, ".")
	cmd.Dir, cmd.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return ferry
}

// keepOnFailure removes dir at cleanup after a pass (unless keep is set
// in the environment); a failed run's files stay for the post-mortem.
// Register it before anything that runs in dir, so it runs last.
func keepOnFailure(t *testing.T, dir, keep string) {
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv(keep) == "" {
			os.RemoveAll(dir)
		}
	})
}

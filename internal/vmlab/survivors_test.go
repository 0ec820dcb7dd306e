package vmlab

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A daemon that left its process group (setsid, as nfs-ganesha does) is
// out of End's reach, but still carries the run's tag: the check names it
// and ends it.
func TestSurvivorsFindsADaemonThatLeftItsGroup(t *testing.T) {
	dir := t.TempDir()
	pidf := filepath.Join(dir, "daemon.pid")
	p, err := start("forker", filepath.Join(dir, "log"), "sh", "-c", `setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > `+pidf)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Wait(5 * time.Second) {
		t.Fatal("the forker did not exit")
	}
	b, _ := os.ReadFile(pidf)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("daemon pid file: %q", b)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	p.End() // what a lab does: its own process is gone, the daemon is not
	left := endSurvivors(runTag(), 500*time.Millisecond)
	if len(left) != 1 || !strings.HasPrefix(left[0], strconv.Itoa(pid)+" sleep 300") {
		t.Fatalf("survivors %q, want the daemon %d (sleep 300)", left, pid)
	}
	if !waitFor(2*time.Second, func() bool { return len(Survivors(runTag())) == 0 }) {
		t.Fatalf("still alive after the check killed them: %v", Survivors(runTag()))
	}
}

// scripts/no-survivors.sh, which make e2e wraps each lab script in, fails
// a run that leaves a process behind and passes one that does not.
func TestNoSurvivorsScriptFailsARunThatLeavesAProcess(t *testing.T) {
	script := filepath.Join("..", "..", "scripts", "no-survivors.sh")
	out, err := exec.Command(script, "sh", "-c", "setsid sleep 301 </dev/null >/dev/null 2>&1 & exit 0").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "left 1 process(es) running") || !strings.Contains(string(out), "sleep 301") {
		t.Fatalf("output does not name the survivor:\n%s", out)
	}
	if out, err := exec.Command(script, "sh", "-c", "sleep 0.1 & wait").CombinedOutput(); err != nil {
		t.Fatalf("a clean run failed: %v\n%s", err, out)
	}
	if out, _ := exec.Command("pgrep", "-f", "sleep 301").Output(); len(out) > 0 {
		t.Fatalf("the script did not kill the survivor: %s", out)
	}
}

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

// A process that ignores SIGTERM, and the child it started, both end.
func TestEndEscalatesToSIGKILLForTheWholeGroup(t *testing.T) {
	dir := t.TempDir()
	pidf := filepath.Join(dir, "child.pid")
	p, err := start("stubborn", filepath.Join(dir, "log"), "sh", "-c",
		`trap '' TERM; sleep 300 & echo $! > `+pidf+`; while :; do sleep 1; done`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.End) // if the test stops before its own End
	if !waitFor(5*time.Second, func() bool { b, _ := os.ReadFile(pidf); return len(b) > 0 }) {
		t.Fatal("the child never started")
	}
	b, _ := os.ReadFile(pidf)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("child pid file: %v", err)
	}
	p.End()
	if p.Running() {
		t.Fatal("still running after End")
	}
	// It ignored SIGTERM, so only the escalation can have ended it.
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("ended with %v, want killed by SIGKILL after SIGTERM was ignored", p.Err())
	}
	if !waitFor(2*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }) {
		t.Fatalf("the child %d outlived its group's end", pid)
	}
}

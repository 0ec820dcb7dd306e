package vmlab

import (
	"os"
	"path/filepath"
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
	if !waitFor(5*time.Second, func() bool { b, _ := os.ReadFile(pidf); return len(b) > 0 }) {
		t.Fatal("the child never started")
	}
	b, _ := os.ReadFile(pidf)
	t0 := time.Now()
	p.End()
	if d := time.Since(t0); d < EndGrace-time.Second {
		t.Fatalf("ended after %s: SIGTERM was not ignored?", d)
	}
	if p.Running() {
		t.Fatal("still running after End")
	}
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	if !waitFor(2*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }) {
		t.Fatalf("the child %d outlived its group's end", pid)
	}
}

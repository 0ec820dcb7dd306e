package vmlab

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A lab run fails on the kernel's own words for trouble, whatever boot
// stage printed them; ferry's and the root's lines do not count.
func TestKernelTroubleFindsWarningsOopsesAndBugs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	os.WriteFile(p, []byte("ferry: phase modules ok\r\n"+
		"[    3.1] alg: drbg: Failed to reset rng\n"+
		"[    3.2] WARNING: CPU: 1 PID: 120 at crypto/testmgr.c:5804 alg_test+0x4d1/0x510\n"+
		"[    3.3] Call Trace:\n"+
		"[    9.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n"+
		"[    9.1] Oops: 0000 [#1] PREEMPT SMP NOPTI\n"+
		"ferry-root: ready\n"), 0o644)
	got := (&Console{Path: p}).KernelTrouble()
	if len(got) != 4 || !slices.Contains(got, "[    3.3] Call Trace:") {
		t.Fatalf("KernelTrouble = %q, want the WARNING, Call Trace, BUG and Oops lines", got)
	}
	os.WriteFile(p, []byte("ferry: phase modules ok\nferry-root: ready\n"), 0o644)
	if got := (&Console{Path: p}).KernelTrouble(); len(got) != 0 {
		t.Fatalf("KernelTrouble of a clean console = %q", got)
	}
}

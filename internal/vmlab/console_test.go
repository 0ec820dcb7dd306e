package vmlab

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// ferry crashing as PID 1 is followed by the kernel's panic and its
// register dump: a failed run's console excerpt starts with the crash.
func TestConsoleTailShowsAGoCrashBeforeIt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	dump := strings.Repeat("[    4.846887] R13: 00000000000000c0 R14: 0000021def204d20\n", 80)
	os.WriteFile(p, []byte("ferry: phase network ok\n"+
		"fatal error: concurrent map writes\n\ngoroutine 7 [running]:\nferry/kmod.(*index).module(...)\n"+
		dump+"---[ end Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000200 ]---\n"), 0o644)
	got := (&Console{Path: p}).Tail(1500)
	if !strings.Contains(got, "fatal error: concurrent map writes") || !strings.Contains(got, "ferry/kmod.(*index).module") ||
		!strings.HasSuffix(got, "exitcode=0x00000200 ]---\n") {
		t.Fatalf("Tail = %q, want the crash's first lines and the console's tail", got)
	}
	if strings.Contains(got, "phase network ok") {
		t.Errorf("Tail = %q: the excerpt starts before the crash", got)
	}
	// No crash, or one within the tail: the plain tail.
	os.WriteFile(p, []byte("ferry: phase network ok\n"+dump), 0o644)
	if got := (&Console{Path: p}).Tail(100); got != dump[len(dump)-100:] {
		t.Errorf("Tail without a crash = %q", got)
	}
	os.WriteFile(p, []byte(dump+"panic: boom\n"), 0o644)
	if got := (&Console{Path: p}).Tail(100); strings.Count(got, "panic: boom") != 1 {
		t.Errorf("Tail with the crash inside it = %q", got)
	}
}

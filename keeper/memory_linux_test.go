package keeper

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadMemoryHold(t *testing.T) {
	proc := t.TempDir()
	os.MkdirAll(filepath.Join(proc, "self"), 0o755)
	os.WriteFile(filepath.Join(proc, "self", "oom_score_adj"), []byte("-1000\n"), 0o644)
	os.WriteFile(filepath.Join(proc, "self", "status"), []byte("Name:\tferry\nVmPeak:\t  812345 kB\nVmLck:\t   41236 kB\nVmPin:\t       0 kB\n"), 0o644)
	got, err := readMemoryHold(proc)
	if err == nil || !strings.Contains(err.Error(), "VmLck VmRSS") {
		t.Fatalf("readMemoryHold without VmRSS = %+v, %v", got, err)
	}
	os.WriteFile(filepath.Join(proc, "self", "status"), []byte("Name:\tferry\nVmPeak:\t  812345 kB\nVmLck:\t 1227152 kB\nVmPin:\t       0 kB\nVmRSS:\t   12345 kB\n"), 0o644)
	got, err = readMemoryHold(proc)
	if err != nil || got != (MemoryHold{OOMScoreAdj: -1000, Locked: true, ResidentKB: 12345}) {
		t.Fatalf("readMemoryHold = %+v, %v", got, err)
	}
	for _, bad := range []string{"Name:\tferry\n", "VmLck:\t lots kB\nVmRSS:\t 1 kB\n", "VmLck:\t 12 MB\nVmRSS:\t 1 kB\n"} {
		if _, err := statusKB(strings.NewReader(bad), "VmLck", "VmRSS"); err == nil {
			t.Errorf("statusKB(%q) = nil error", bad)
		}
	}
	os.WriteFile(filepath.Join(proc, "self", "oom_score_adj"), []byte("none"), 0o644)
	if _, err := readMemoryHold(proc); err == nil || !strings.Contains(err.Error(), "oom_score_adj") {
		t.Errorf("a bad oom_score_adj: %v", err)
	}
}

// In a child process (mlockall would lock the whole test binary's
// memory), as root: the memory is locked; oom_score_adj -1000 takes with
// CAP_SYS_RESOURCE (a lent server's keeper has it; a container may not),
// and without it the error names it while the lock still holds.
func TestHoldInMemoryInAChild(t *testing.T) {
	if os.Getenv("FERRY_KEEPER_HOLD_CHILD") == "1" {
		err := HoldInMemory("/proc")
		h, rerr := readMemoryHold("/proc")
		if rerr != nil || !h.Locked {
			t.Fatalf("after HoldInMemory (%v): %+v, %v: nothing locked", err, h, rerr)
		}
		if hasCap(t, unix.CAP_SYS_RESOURCE) {
			if err != nil || h.OOMScoreAdj != -1000 {
				t.Fatalf("with CAP_SYS_RESOURCE: %v, oom_score_adj %d", err, h.OOMScoreAdj)
			}
		} else if err == nil || !strings.Contains(err.Error(), "oom_score_adj -1000") || strings.Contains(err.Error(), "mlockall") {
			t.Fatalf("without CAP_SYS_RESOURCE: error %v, want oom_score_adj's alone", err)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_IPC_LOCK for mlockall beyond RLIMIT_MEMLOCK)")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldInMemoryInAChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "FERRY_KEEPER_HOLD_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestHoldInMemoryInAChild") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// hasCap reports whether this process has capability c in effect.
func hasCap(t *testing.T, c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	return data[c/32].Effective&(1<<(c%32)) != 0
}

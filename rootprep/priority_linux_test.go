package rootprep

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A copy runs at nice 19 and the lowest best-effort I/O priority (read on
// the copying thread itself, from its progress calls), and the caller's
// thread keeps its own priority.
func TestCopyRunsAtLowPriority(t *testing.T) {
	p := newPreparer(t)
	p.ProgressEvery = 1
	tmpl := filepath.Join(t.TempDir(), "tmpl")
	must(t, os.MkdirAll(filepath.Join(tmpl, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(tmpl, "etc", "hostname"), []byte("lent\n"), 0o644))
	before, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	must(t, err)
	var nices, ioprios []int
	_, _, err = p.PrepareWith(bg, tmpl, "r1", func(Stats) {
		tid := unix.Gettid()
		// getpriority(2) returns 20-nice for PRIO_PROCESS.
		n, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			t.Errorf("getpriority: %v", err)
		}
		io, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
		if errno != 0 {
			t.Errorf("ioprio_get: %v", errno)
		}
		nices, ioprios = append(nices, 20-n), append(ioprios, int(io))
	})
	must(t, err)
	if len(nices) == 0 {
		t.Fatal("no progress call: nothing observed on the copying thread")
	}
	for i := range nices {
		if nices[i] != 19 || ioprios[i] != ioprioLowestBE {
			t.Fatalf("copying thread at nice %d, ioprio %#x; want 19 and %#x (best-effort, level 7)", nices[i], ioprios[i], ioprioLowestBE)
		}
	}
	if after, _ := unix.Getpriority(unix.PRIO_PROCESS, 0); after != before {
		t.Fatalf("the caller's priority changed from %d to %d", before, after)
	}
}

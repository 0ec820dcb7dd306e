package disks

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Hole 8 (c) of "Trust boundaries": the disks-ro phase marks the disks
// present then; one that appears later (a slow controller, a partition
// table re-read) must be marked too while ferry's phases run.
func TestWatcherMarksDiskThatAppearsLater(t *testing.T) {
	dev := loopDevice(t)
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	sys := fakeSys(t, map[string]string{"vda": "254:0"})
	devDir := t.TempDir()
	var mu sync.Mutex
	var reported []string
	w := watch(sys, devDir, []string{"vda"}, nil, func(name string) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, name)
	})
	stopped := false
	defer func() {
		if !stopped {
			w.Stop()
		}
	}()
	// The loop device shows up as disk "vdz", node and all, after the
	// watcher started (after the disks-ro phase, in the agent).
	if err := unix.Mknod(filepath.Join(devDir, "vdz"), unix.S_IFBLK|0o600, int(st.Rdev)); err != nil {
		t.Skipf("mknod in %s: %v", devDir, err)
	}
	os.MkdirAll(filepath.Join(sys, "vdz"), 0o755)
	os.WriteFile(filepath.Join(sys, "vdz", "dev"), []byte(fmtDev(st.Rdev)+"\n"), 0o644)

	deadline := time.Now().Add(15 * time.Second)
	for {
		if ro, err := ReadOnly(dev); err == nil && ro {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (disk vdz) appeared after the watcher started and is still writable 15 s later", dev)
		}
		time.Sleep(50 * time.Millisecond)
	}
	late := w.Stop()
	stopped = true
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(late, []string{"vdz"}) || !slices.Equal(reported, []string{"vdz"}) {
		t.Fatalf("watcher marked %v and reported %v, want [vdz] (vda was marked before)", late, reported)
	}
}

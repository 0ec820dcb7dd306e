package keeper

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMountWatchWakesOnRemountReadOnly remounts a tmpfs read-only in a
// mount namespace of its own and checks what the keeper relies on: the
// kernel wakes a poll on mountinfo for it, and the table then shows the
// superblock read-only.
func TestMountWatchWakesOnRemountReadOnly(t *testing.T) {
	if os.Getenv("FERRY_TEST_MOUNTNS") == "" {
		if os.Getuid() != 0 {
			t.Skip("needs root for a mount namespace")
		}
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Skip("no unshare(1)")
		}
		cmd := exec.Command(unshare, "-m", "--propagation", "private", os.Args[0],
			"-test.run=^TestMountWatchWakesOnRemountReadOnly$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "FERRY_TEST_MOUNTNS=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("in a mount namespace: %v\n%s", err, out)
		}
		return
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	w := newMountWatch("/proc/self/mountinfo", slog.New(slog.DiscardHandler))
	defer w.close()
	errc := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		errc <- unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// every is an hour: a true answer can only be the kernel's event.
	if !w.wait(ctx, time.Hour) {
		t.Fatal("no mount-table event for the remount")
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ms, err := Mounts(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.MountPoint == dir {
			if !m.SuperReadOnly {
				t.Fatalf("%s remounted ro, but mountinfo shows it writable: %+v", dir, m)
			}
			return
		}
	}
	t.Fatalf("%s not in mountinfo", dir)
}

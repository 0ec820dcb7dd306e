package disks

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// loopDevice attaches a fresh 1 MiB file to a loop device and detaches it
// at the end of the test; it skips when loop devices do not work here.
func loopDevice(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("losetup does not work here: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		ClearReadOnly(dev)
		exec.Command("losetup", "-d", dev).Run()
	})
	return dev
}

func TestSetReadOnlyMakesWritesFail(t *testing.T) {
	dev := loopDevice(t)
	if ro, err := ReadOnly(dev); err != nil || ro {
		t.Fatalf("ReadOnly(%s) before = %v, %v; want false", dev, ro, err)
	}
	if err := SetReadOnly(dev); err != nil {
		t.Fatal(err)
	}
	if ro, err := ReadOnly(dev); err != nil || !ro {
		t.Fatalf("ReadOnly(%s) after = %v, %v; want true", dev, ro, err)
	}
	sys := filepath.Join("/sys/block", filepath.Base(dev), "ro")
	if b, err := os.ReadFile(sys); err == nil && strings.TrimSpace(string(b)) != "1" {
		t.Errorf("%s = %q, want 1", sys, b)
	}
	// The kernel refuses either the open for writing or the write itself.
	fd, err := unix.Open(dev, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(fd)
		_, err = unix.Write(fd, make([]byte, 512))
	}
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EROFS) {
		t.Fatalf("writing to read-only %s: %v, want EPERM, EACCES or EROFS", dev, err)
	}
	t.Logf("write to read-only %s refused: %v", dev, err)

	if err := ClearReadOnly(dev); err != nil {
		t.Fatal(err)
	}
	if ro, _ := ReadOnly(dev); ro {
		t.Fatalf("ClearReadOnly(%s) left it read-only", dev)
	}
}

func TestCheckNodeRefusesWrongDevice(t *testing.T) {
	dev := loopDevice(t)
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	if err := checkNode(dev, "1:2345"); err == nil {
		t.Errorf("checkNode(%s, 1:2345) accepted a node with another device number", dev)
	}
	if err := checkNode(filepath.Join(t.TempDir(), "x"), "7:0"); err == nil {
		t.Error("checkNode accepted a missing node")
	}
	if err := checkNode(dev, fmtDev(st.Rdev)); err != nil {
		t.Errorf("checkNode on the right device: %v", err)
	}
}

func fmtDev(rdev uint64) string { return fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev)) }

func TestMarkAllReadOnlyMarksListedDevices(t *testing.T) {
	dev := loopDevice(t)
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	// A fake sysfs that shows the loop device as a disk "vdz", and a /dev
	// that holds its node: the host's real disks are never touched.
	sys := fakeSys(t, map[string]string{"vdz": fmtDev(st.Rdev), "loop9": "7:9"})
	devDir := t.TempDir()
	if err := unix.Mknod(filepath.Join(devDir, "vdz"), unix.S_IFBLK|0o600, int(st.Rdev)); err != nil {
		t.Skipf("mknod in %s: %v", devDir, err)
	}
	marked, err := markAll(sys, devDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(marked) != 1 || marked[0] != "vdz" {
		t.Fatalf("markAll = %v, want [vdz]", marked)
	}
	if ro, err := ReadOnly(dev); err != nil || !ro {
		t.Fatalf("ReadOnly(%s) = %v, %v after markAll; want true", dev, ro, err)
	}
}

func TestMarkAllReadOnlyReportsMissingNode(t *testing.T) {
	sys := fakeSys(t, map[string]string{"vdq": "254:77"})
	marked, err := markAll(sys, t.TempDir(), nil)
	if len(marked) != 0 || err == nil || !strings.Contains(err.Error(), "254:77") {
		t.Fatalf("markAll with no /dev node = %v, %v; want an error naming 254:77", marked, err)
	}
}

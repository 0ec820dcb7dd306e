package nfsroot

import (
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func mustMount(t *testing.T, src, target, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, target, fstype, flags, data); err != nil {
		t.Fatalf("mount(%q, %q, %q, %#x, %q) = %v", src, target, fstype, flags, data, err)
	}
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
}

func writeFile(t *testing.T, p, s string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func TestDeleteTreeKeepsOtherMounts(t *testing.T) {
	var out string
	if !inChild(t, &out) {
		return
	}
	root := t.TempDir()
	elsewhere := t.TempDir()
	writeFile(t, filepath.Join(root, "a"), "a", 0o644)
	writeFile(t, filepath.Join(root, "d/e/f"), "f", 0o600)
	writeFile(t, filepath.Join(elsewhere, "keep-bind"), "k", 0o644)
	writeFile(t, filepath.Join(elsewhere, "target"), "not mine", 0o644)
	if err := os.Symlink(filepath.Join(elsewhere, "target"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	// A bind mount of the same file system (same st_dev, other mount id)
	// deep in a directory, and a tmpfs (other st_dev).
	mustMount(t, elsewhere, filepath.Join(root, "d/bind"), "", unix.MS_BIND, "")
	mustMount(t, "tmpfs", filepath.Join(root, "tmp"), "tmpfs", 0, "")
	writeFile(t, filepath.Join(root, "tmp/keep-tmpfs"), "k", 0o644)

	if err := deleteTree(root); err != nil {
		t.Fatalf("deleteTree: %v", err)
	}
	if got, want := names(t, root), []string{"d", "tmp"}; !reflect.DeepEqual(got, want) {
		t.Errorf("left in root: %v, want %v", got, want)
	}
	if got, want := names(t, filepath.Join(root, "d")), []string{"bind"}; !reflect.DeepEqual(got, want) {
		t.Errorf("left in root/d: %v, want %v (the way to the bind mount)", got, want)
	}
	for _, p := range []string{"d/bind/keep-bind", "d/bind/target", "tmp/keep-tmpfs"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s inside another mount was touched: %v", p, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(elsewhere, "target")); err != nil || string(b) != "not mine" {
		t.Errorf("symlink target outside the tree: %q, %v; want it untouched", b, err)
	}
}

func TestSwitchRootRefusesNonMountpoint(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sbin/init"), "#!/bin/sh\n", 0o755)
	err := preflight(dir, "/sbin/init", 1, tmpfsMagic)
	if err == nil || !strings.Contains(err.Error(), "not a mount point") {
		t.Fatalf("preflight on a plain directory = %v, want 'not a mount point'", err)
	}
	// The exported function refuses too, and leaves everything as it was.
	if err := SwitchRoot(dir, "/sbin/init", nil); err == nil {
		t.Fatal("SwitchRoot on a plain directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "sbin/init")); err != nil {
		t.Fatalf("refusal changed the new root: %v", err)
	}
}

func TestSwitchRootRefusesMissingOrNonExecutableInit(t *testing.T) {
	var out string
	if !inChild(t, &out) {
		return
	}
	root := t.TempDir()
	mustMount(t, "tmpfs", root, "tmpfs", 0, "")
	writeFile(t, filepath.Join(root, "lib/systemd/systemd"), "", 0o755)
	writeFile(t, filepath.Join(root, "etc/motd"), "", 0o644)
	os.MkdirAll(filepath.Join(root, "sbin"), 0o755)
	os.Symlink("/lib/systemd/systemd", filepath.Join(root, "sbin/init"))
	os.Symlink("/nonexistent", filepath.Join(root, "sbin/dangling"))
	// Exists on the host, not in the new root: must not be found.
	os.Symlink("/bin/sh", filepath.Join(root, "sbin/hostsh"))

	if err := preflight(root, "/sbin/init", 1, tmpfsMagic); err != nil {
		t.Errorf("preflight with /sbin/init -> /lib/systemd/systemd: %v", err)
	}
	for _, tc := range []struct{ init, want string }{
		{"/sbin/missing", "not found"},
		{"/sbin/dangling", "not found"},
		{"/sbin/hostsh", "not found"},
		{"/etc/motd", "not an executable"},
		{"/etc", "not an executable"},
		{"", "no init"},
	} {
		err := preflight(root, tc.init, 1, tmpfsMagic)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("preflight(init %q) = %v, want %q", tc.init, err, tc.want)
		}
	}
}

func TestSwitchRootRefusesDiskRootAndNonPID1(t *testing.T) {
	var out string
	if !inChild(t, &out) {
		return
	}
	root := t.TempDir()
	mustMount(t, "tmpfs", root, "tmpfs", 0, "")
	writeFile(t, filepath.Join(root, "init"), "", 0o755)
	if err := preflight(root, "/init", 1, 0xef53); err == nil || !strings.Contains(err.Error(), "not an initramfs") {
		t.Errorf("preflight with / on ext4 = %v, want 'not an initramfs'", err)
	}
	if err := preflight(root, "/init", 42, ramfsMagic); err == nil || !strings.Contains(err.Error(), "PID 1") {
		t.Errorf("preflight as PID 42 = %v, want 'PID 1'", err)
	}
	// On this host "/" is a disk (or overlay) and we are not PID 1.
	if err := SwitchRoot(root, "/init", nil); err == nil {
		t.Error("SwitchRoot from the host's root succeeded")
	}
	if _, err := os.Stat(filepath.Join(root, "init")); err != nil {
		t.Errorf("refusal changed the new root: %v", err)
	}
}

// TestSwitchRootExecsInitAndDeletesInitramfs builds a fake initramfs on a
// tmpfs, pivots into it in a private mount namespace, switches to a second
// tmpfs holding a copy of this test binary as init (reached through an
// absolute symlink /sbin/init -> /init), and reads the report that binary
// prints when it runs as init.
func TestSwitchRootExecsInitAndDeletesInitramfs(t *testing.T) {
	var out string
	if !inChild(t, &out) {
		i := strings.Index(out, "INIT-REPORT ")
		if i < 0 {
			t.Fatalf("init did not report:\n%s", out)
		}
		line := out[i+len("INIT-REPORT "):]
		line = line[:strings.IndexByte(line, '\n')]
		var r initReport
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("report %q: %v", line, err)
		}
		t.Logf("init report: %+v", r)
		if want := []string{"/sbin/init", "one", "two words"}; !reflect.DeepEqual(r.Args, want) {
			t.Errorf("init argv = %q, want %q", r.Args, want)
		}
		if r.Cwd != "/" {
			t.Errorf("init cwd = %q, want /", r.Cwd)
		}
		if !contains(r.RootFiles, "init") || contains(r.RootFiles, "oldfile") || contains(r.RootFiles, "newroot") {
			t.Errorf("init sees / = %v, want the new root (init, no oldfile)", r.RootFiles)
		}
		if !r.OldRootOK || len(r.OldRoot) != 0 {
			t.Errorf("old initramfs still holds %v (readable %v), want it emptied", r.OldRoot, r.OldRootOK)
		}
		if !r.DevMarker || !r.ProcSelf || !r.SysKernel {
			t.Errorf("moved mounts: /dev %v /proc %v /sys %v, want all true", r.DevMarker, r.ProcSelf, r.SysKernel)
		}
		if r.RunExists {
			t.Errorf("/run exists in the new root, which had no /run: want it detached, not created")
		}
		return
	}

	// The fake initramfs.
	ramfs, err := os.MkdirTemp("", "ferry-initramfs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(ramfs)
	mustMount(t, "tmpfs", ramfs, "tmpfs", 0, "mode=0755")
	writeFile(t, filepath.Join(ramfs, "oldfile"), "initramfs", 0o644)
	writeFile(t, filepath.Join(ramfs, "ferry/state/key.pem"), "secret", 0o600)
	mustMount(t, "tmpfs", filepath.Join(ramfs, "dev"), "tmpfs", 0, "")
	writeFile(t, filepath.Join(ramfs, "dev/devmarker"), "", 0o644)
	mustMount(t, "proc", filepath.Join(ramfs, "proc"), "proc", 0, "")
	mustMount(t, "sysfs", filepath.Join(ramfs, "sys"), "sysfs", 0, "")
	mustMount(t, "tmpfs", filepath.Join(ramfs, "run"), "tmpfs", 0, "")

	// The new root: dev, proc, sys but no run; init is this test binary.
	nr := filepath.Join(ramfs, "newroot")
	mustMount(t, "tmpfs", nr, "tmpfs", 0, "mode=0755")
	for _, d := range []string{"dev", "proc", "sys", "sbin"} {
		os.MkdirAll(filepath.Join(nr, d), 0o755)
	}
	copyFile(t, os.Args[0], filepath.Join(nr, "init"))
	if err := os.Symlink("/init", filepath.Join(nr, "sbin/init")); err != nil {
		t.Fatal(err)
	}
	if dynamic(t, os.Args[0]) {
		// A cgo-linked test binary needs the host's loader and libc.
		for _, d := range []string{"lib", "lib64", "usr"} {
			fi, err := os.Lstat("/" + d)
			switch {
			case err != nil:
			case fi.Mode()&os.ModeSymlink != 0:
				l, _ := os.Readlink("/" + d)
				os.Symlink(l, filepath.Join(nr, d))
			default:
				mustMount(t, "/"+d, filepath.Join(nr, d), "", unix.MS_BIND|unix.MS_REC, "")
			}
		}
	}

	// Become the initramfs: pivot into it and drop the host's tree.
	if err := os.Chdir(ramfs); err != nil {
		t.Fatal(err)
	}
	os.Mkdir("oldroot", 0o755)
	if err := unix.PivotRoot(".", "oldroot"); err != nil {
		t.Fatalf("pivot_root(., oldroot) = %v", err)
	}
	if err := unix.Chdir("/"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount("/oldroot", unix.MNT_DETACH); err != nil {
		t.Fatalf("umount2(/oldroot, MNT_DETACH) = %v", err)
	}
	os.Remove("/oldroot")

	// Keep the old root open across exec so init can check it was emptied.
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		t.Fatal(err)
	}
	if err := preflight("/newroot", "/sbin/init", 1, int64(st.Type)); err != nil {
		t.Fatalf("preflight in the fake initramfs (as if PID 1): %v", err)
	}
	env := append(os.Environ(), envAsInit+"=1", envOldFD+"="+strconv.Itoa(fd))
	err = switchRoot("/newroot", "/sbin/init", []string{"one", "two words"}, env, os.Stderr)
	t.Fatalf("switchRoot returned: %v", err)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func dynamic(t *testing.T, p string) bool {
	f, err := elf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

package nfsroot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Magic numbers of the file systems an initramfs lives on (statfs f_type).
const (
	ramfsMagic = 0x858458f6
	tmpfsMagic = 0x01021994
)

// SwitchRoot makes newRoot the root file system and execs init in it with
// args (argv[0] is init), like util-linux's and busybox's switch_root. It
// refuses, before changing anything, when newRoot is not a mount point,
// when init is missing or not executable inside newRoot (symlinks resolved
// relative to newRoot), when "/" is not an initramfs (rootfs, ramfs or
// tmpfs) or when the caller is not PID 1. Then it moves /dev, /proc, /sys
// and /run into newRoot (unmounting lazily what has no place there),
// deletes the initramfs without crossing into other mounts, moves newRoot
// onto "/", chroots into it and execs init. It returns only on failure;
// after the first move the system is half switched and the caller, PID 1,
// can only report and die.
func SwitchRoot(newRoot, init string, args []string) error {
	if err := CheckSwitchRoot(newRoot, init); err != nil {
		return err
	}
	return switchRoot(newRoot, init, args, os.Environ(), os.Stderr)
}

// CheckSwitchRoot makes SwitchRoot's checks without changing anything, so
// that a caller can refuse early (before reopening the console, say).
func CheckSwitchRoot(newRoot, init string) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return fmt.Errorf("statfs(\"/\") = %w", err)
	}
	return preflight(newRoot, init, os.Getpid(), int64(st.Type))
}

// preflight makes SwitchRoot's checks, given the caller's pid and the
// statfs magic of "/"; it changes nothing.
func preflight(newRoot, init string, pid int, rootMagic int64) error {
	if !filepath.IsAbs(newRoot) || filepath.Clean(newRoot) == "/" {
		return fmt.Errorf("new root %q: want an absolute path other than /", newRoot)
	}
	fi, err := os.Stat(newRoot)
	if err != nil {
		return fmt.Errorf("new root: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("new root %s: not a directory", newRoot)
	}
	mp, err := isMountPoint(newRoot)
	if err != nil {
		return fmt.Errorf("new root: %w", err)
	}
	if !mp {
		return fmt.Errorf("new root %s is not a mount point (mount the real root there first)", newRoot)
	}
	if init == "" {
		return errors.New("no init given")
	}
	host, err := resolveIn(newRoot, init)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("init %s not found in new root %s (looked for %s)", init, newRoot, host)
	}
	if err != nil {
		return fmt.Errorf("init %s in new root %s: %w", init, newRoot, err)
	}
	ifi, err := os.Stat(host)
	if err != nil {
		return fmt.Errorf("init %s in new root %s: %w", init, newRoot, err)
	}
	if !ifi.Mode().IsRegular() || ifi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("init %s in new root %s (%s): not an executable file (mode %v)", init, newRoot, host, ifi.Mode())
	}
	if rootMagic != ramfsMagic && rootMagic != tmpfsMagic {
		return fmt.Errorf("/ is not an initramfs (statfs magic %#x, want rootfs/ramfs %#x or tmpfs %#x): refusing to delete it", rootMagic, ramfsMagic, tmpfsMagic)
	}
	if pid != 1 {
		return fmt.Errorf("must run as PID 1 (this is PID %d)", pid)
	}
	return nil
}

// switchRoot does the switch after preflight; warnings (a mount that could
// not be moved, files that could not be deleted) go to warn, as
// util-linux's do, since nothing can stop the switch at that point.
func switchRoot(newRoot, init string, args, env []string, warn io.Writer) error {
	newRoot = filepath.Clean(newRoot)
	for _, dir := range []string{"/dev", "/proc", "/sys", "/run"} {
		moveOrDetach(dir, newRoot, warn)
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("chdir(%q) = %w", newRoot, err)
	}
	old, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open(\"/\") = %w", err)
	}
	defer unix.Close(old)
	if err := unix.Mount(newRoot, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("mount(%q, %q, %q, %#x, %q) = %w", newRoot, "/", "", unix.MS_MOVE, "", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot(\".\") = %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir(\"/\") = %w", err)
	}
	// The old root is hidden under the new one now, reachable only by fd.
	var st unix.Statfs_t
	if err := unix.Fstatfs(old, &st); err == nil && (st.Type == ramfsMagic || st.Type == tmpfsMagic) {
		if err := deleteContents(old); err != nil {
			fmt.Fprintf(warn, "deleting the initramfs: %v\n", err)
		}
	}
	argv := append([]string{init}, args...)
	if err := unix.Exec(init, argv, env); err != nil {
		return fmt.Errorf("execve(%q, %q) = %w", init, argv, err)
	}
	return nil
}

// moveOrDetach moves the mount at dir into newRoot; when newRoot has no
// directory for it, or the move fails, it detaches the mount instead.
// A dir that is not a mount point is left alone.
func moveOrDetach(dir, newRoot string, warn io.Writer) {
	if mp, err := isMountPoint(dir); err != nil || !mp {
		return
	}
	target, err := resolveIn(newRoot, dir)
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Stat(target); err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s: not a directory", target)
		}
	}
	if err == nil {
		if err = unix.Mount(dir, target, "", unix.MS_MOVE, ""); err == nil {
			return
		}
		fmt.Fprintf(warn, "mount(%q, %q, %q, %#x, %q) = %v; unmounting it\n", dir, target, "", unix.MS_MOVE, "", err)
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		fmt.Fprintf(warn, "umount2(%q, MNT_DETACH) = %v\n", dir, err)
	}
}

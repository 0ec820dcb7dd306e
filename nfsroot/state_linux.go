package nfsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// PlaceState makes the initramfs's state directory stateDir (absolute,
// e.g. /ferry) reachable at the same path inside newRoot, so that the
// tunnel keeper finds its files where it left them after switch_root.
// The path is resolved inside newRoot (a symlink on the borrower's export
// cannot redirect it into the initramfs or elsewhere). With ModeTmpfs a
// tmpfs (mode 0700) is mounted there first, creating the mount point on
// the export if missing; with ModeCopy the files go onto the export, key
// files 0600, each written atomically. The paths in skip (relative to
// stateDir, e.g. "bin") stay out of the new root.
func PlaceState(newRoot, stateDir string, mode Mode, skip ...string) error {
	if !filepath.IsAbs(stateDir) || filepath.Clean(stateDir) == "/" {
		return fmt.Errorf("place state %q: want an absolute directory other than /", stateDir)
	}
	clean := make([]string, 0, len(skip))
	for _, s := range skip {
		if c := filepath.Clean(s); filepath.IsAbs(s) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
			return fmt.Errorf("place state %s: skip %q: want a path inside it", stateDir, s)
		}
		clean = append(clean, filepath.Clean(s))
	}
	skip = clean
	if fi, err := os.Stat(stateDir); err != nil {
		return fmt.Errorf("place state: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("place state %s: not a directory", stateDir)
	}
	dst, err := resolveIn(newRoot, stateDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("place state %s in %s: %w", stateDir, newRoot, err)
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("place state %s in %s: %w", stateDir, newRoot, err)
	}
	switch mode {
	case ModeTmpfs, "":
		const flags = unix.MS_NOSUID | unix.MS_NODEV
		if err := unix.Mount("tmpfs", dst, "tmpfs", flags, "mode=0700"); err != nil {
			return fmt.Errorf("mount(%q, %q, %q, %#x, %q) = %w", "tmpfs", dst, "tmpfs", flags, "mode=0700", err)
		}
		if err := copyTree(stateDir, dst, skip); err != nil {
			unix.Unmount(dst, unix.MNT_DETACH)
			return fmt.Errorf("place state %s on tmpfs %s: %w", stateDir, dst, err)
		}
		// copyTree gave the top directory the source's mode; keep it 0700.
		return os.Chmod(dst, 0o700)
	case ModeCopy:
		if err := copyTree(stateDir, dst, skip); err != nil {
			return fmt.Errorf("place state %s on the export at %s: %w", stateDir, dst, err)
		}
		return nil
	}
	return fmt.Errorf("place state: unknown mode %q", mode)
}

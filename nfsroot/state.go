package nfsroot

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"ferry/internal/atomicfile"
)

// Mode says where PlaceState puts the state directory in the new root.
type Mode string

const (
	// ModeTmpfs (the default) mounts a tmpfs (mode 0700) at the state
	// directory's path in the new root and copies the state there: the
	// keys stay in RAM and never reach the borrower's export.
	ModeTmpfs Mode = "tmpfs"
	// ModeCopy copies the state onto the export itself, as the seed paper
	// does, for borrowers who want the root to hold it.
	ModeCopy Mode = "copy"
)

// ParseMode reads the settings' root.state value; empty means ModeTmpfs.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeTmpfs:
		return ModeTmpfs, nil
	case ModeCopy:
		return ModeCopy, nil
	}
	return "", fmt.Errorf("state placement %q: want %q or %q", s, ModeTmpfs, ModeCopy)
}

// isKey reports whether a state file holds a secret and must be 0600
// wherever it lands: its name mentions "key" (key.pem, server.key, ...).
func isKey(name string) bool {
	return strings.Contains(strings.ToLower(filepath.Base(name)), "key")
}

// copyTree copies the directory tree src into dst (created if missing):
// directories and files keep their permission bits, except that key files
// get 0600; symlinks are recreated as they are. Each file is written to a
// temporary name, synced and renamed, so a reader (or a crash) never sees
// half a key. Devices, FIFOs and sockets are refused. The paths in skip
// (relative to src, files or whole directories) are left out.
func copyTree(src, dst string, skip []string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if slices.Contains(skip, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.MkdirAll(to, fi.Mode().Perm()); err != nil {
				return err
			}
			return os.Chmod(to, fi.Mode().Perm())
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Remove(to); err != nil && !os.IsNotExist(err) {
				return err
			}
			return os.Symlink(target, to)
		case fi.Mode().IsRegular():
			perm := fi.Mode().Perm()
			if isKey(p) {
				perm = 0o600
			}
			return copyFileAtomic(p, to, perm)
		}
		return fmt.Errorf("copy state %s: unsupported file type %v", p, fi.Mode().Type())
	})
}

func copyFileAtomic(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Copy(dst, in, perm)
}

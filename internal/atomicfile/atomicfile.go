// Package atomicfile replaces files so that a reader, or a machine that
// loses power, sees the old file or the new one and never a part of
// either: the contents go to a temporary file in the same directory,
// which is synced, given its mode, and renamed over the target; the
// directory is then synced so the rename itself survives a crash.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFunc replaces path with what write puts into f, then gives it perm.
// The temporary file is created 0600 and widened only once the contents
// are in, so a secret is never readable by others on the way. On any
// failure the temporary file is removed and path is left as it was.
func WriteFunc(path string, perm os.FileMode, write func(f *os.File) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("atomicfile: fsync(%q) = %w", f.Name(), err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	SyncDir(dir)
	return nil
}

// Write replaces path with data, mode perm.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, func(f *os.File) error {
		if _, err := f.Write(data); err != nil {
			return fmt.Errorf("atomicfile: %w", err)
		}
		return nil
	})
}

// Copy replaces dst with the contents of r, mode perm.
func Copy(dst string, r io.Reader, perm os.FileMode) error {
	return WriteFunc(dst, perm, func(f *os.File) error {
		if _, err := io.Copy(f, r); err != nil {
			return fmt.Errorf("atomicfile: copy to %s: %w", f.Name(), err)
		}
		return nil
	})
}

// SyncDir makes a rename or removal in dir durable. A failure only weakens
// durability, never correctness, so it is not reported.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

package initrd

import (
	"fmt"
	"os"
	"path/filepath"
)

// writeAtomic creates path through a temporary file in the same directory:
// write fills it, then it is synced, closed and renamed over path. On any
// failure the temporary file is removed and path is left untouched.
func writeAtomic(path string, perm os.FileMode, write func(f *os.File) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary output: %w", err)
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
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("%s: fsync: %w", f.Name(), err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("%s: close: %w", f.Name(), err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename durable; failure only weakens durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

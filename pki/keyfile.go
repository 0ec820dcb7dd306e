package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrOnDisk is returned when a private key would land on a file system
// that may be backed by a disk.
var ErrOnDisk = errors.New("not on tmpfs or ramfs")

// WriteSecretFile writes data to path with mode 0600, refusing to replace
// an existing file. Unless allowDisk is set, path's directory must be on
// tmpfs or ramfs, so the key never touches a disk.
func WriteSecretFile(path string, data []byte, allowDisk bool) error {
	if !allowDisk {
		dir := filepath.Dir(path)
		mem, fstype, err := inMemoryFS(dir)
		if err != nil {
			return fmt.Errorf("pki: check file system of %s: %w", dir, err)
		}
		if !mem {
			return fmt.Errorf("pki: refuse to write private key %s: %s is %s, %w (use --allow-disk to override)", path, dir, fstype, ErrOnDisk)
		}
	}
	return writeExclusive(path, data, 0o600)
}

// WritePublicFile writes data to path with mode 0644, refusing to replace
// an existing file.
func WritePublicFile(path string, data []byte) error {
	return writeExclusive(path, data, 0o644)
}

func writeExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("pki: refuse to write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("pki: close %s: %w", path, err)
	}
	return nil
}

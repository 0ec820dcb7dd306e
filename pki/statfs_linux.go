package pki

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// inMemoryFS reports whether dir lives on tmpfs or ramfs, and names its
// file system type for messages.
func inMemoryFS(dir string) (bool, string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, "", fmt.Errorf("statfs(%s): %w", dir, err)
	}
	switch int64(st.Type) {
	case unix.TMPFS_MAGIC:
		return true, "tmpfs", nil
	case unix.RAMFS_MAGIC:
		return true, "ramfs", nil
	}
	return false, fmt.Sprintf("file system type 0x%x", st.Type), nil
}

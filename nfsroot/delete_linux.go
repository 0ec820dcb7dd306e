package nfsroot

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// deleteTree removes everything under root that lives on root's own mount,
// like util-linux's switch_root does with the initramfs: it never descends
// into another mount (other device or mount id) and leaves the directories
// that lead to one. root itself stays. It keeps going after errors and
// returns them all.
func deleteTree(root string) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open(%q, O_DIRECTORY) = %w", root, err)
	}
	defer unix.Close(fd)
	return deleteContents(fd)
}

// deleteContents removes what deleteTree removes, below an open directory.
func deleteContents(dirfd int) error {
	key, _, err := statxMount(dirfd, "")
	if err != nil {
		return err
	}
	_, err = removeBelow(dirfd, key)
	return err
}

// removeBelow empties the directory dirfd of everything on mount key and
// reports whether it is now empty.
func removeBelow(dirfd int, key mountKey) (empty bool, err error) {
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return false, fmt.Errorf("dup(%d) = %w", dirfd, err)
	}
	d := os.NewFile(uintptr(dup), "dir")
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return false, fmt.Errorf("getdents(%d) = %w", dirfd, err)
	}
	var errs []error
	empty = true
	for _, e := range ents {
		name := e.Name()
		k, mode, err := statxMount(dirfd, name)
		if err != nil {
			errs = append(errs, err)
			empty = false
			continue
		}
		if k != key {
			empty = false // another mount: leave it and the way to it
			continue
		}
		flags := 0
		if mode&unix.S_IFMT == unix.S_IFDIR {
			sub, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				errs = append(errs, fmt.Errorf("openat(%d, %q, O_DIRECTORY|O_NOFOLLOW) = %w", dirfd, name, err))
				empty = false
				continue
			}
			subEmpty, err := removeBelow(sub, key)
			unix.Close(sub)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s/%w", name, err))
			}
			if !subEmpty {
				empty = false
				continue
			}
			flags = unix.AT_REMOVEDIR
		}
		if err := unix.Unlinkat(dirfd, name, flags); err != nil {
			errs = append(errs, fmt.Errorf("unlinkat(%d, %q, %#x) = %w", dirfd, name, flags, err))
			empty = false
		}
	}
	return empty, errors.Join(errs...)
}

package rootprep

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The trees rootprep reads are written by others: a root by its lent
// server (through NFS, while it is archived if the lease did not stop
// cleanly), a template by whoever maintains it. A path looked at and then
// opened may have become a symlink in between, or a directory on the way
// to it may have. So every tree is walked through directory handles:
//
//   - an entry is looked at with fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)
//     and opened relative to the same handle, never by a path;
//   - directories are opened O_DIRECTORY|O_NOFOLLOW and must be the very
//     directory looked at (device and inode, by fstat);
//   - files are first opened O_PATH|O_NOFOLLOW, which opens nothing, and
//     must be the very regular file looked at; only then are they opened
//     for reading, through /proc/self/fd, so a device node or FIFO swapped
//     in is never opened (opening some devices acts: a watchdog starts);
//   - calls without an *at form (the l*xattr family) name the entry as
//     /proc/self/fd/DIRFD/NAME: the directory is the handle, and the last
//     component is not followed.
//
// The new root being written is handled the same way. A change seen is an
// error naming the entry: the copy or archive stops, fails closed and
// leaves the root where it was.

// procFD is the /proc/self/fd path of fd, and of name inside it.
func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

func procAt(dirfd int, name string) string { return procFD(dirfd) + "/" + name }

// statAt looks at name in dirfd without following it.
func statAt(dirfd int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}

func sameFile(a, b *unix.Stat_t) bool {
	return a.Dev == b.Dev && a.Ino == b.Ino && a.Mode&unix.S_IFMT == b.Mode&unix.S_IFMT
}

var errChanged = errors.New("changed while being read (replaced, or turned into a symlink): refusing to follow it")

// openDirAt opens the directory name in dirfd, never through a symlink;
// when want is set it must be that directory.
func openDirAt(dirfd int, name string, want *unix.Stat_t) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return -1, errChanged
	}
	if err != nil {
		return -1, err
	}
	if want != nil {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		if !sameFile(&st, want) {
			unix.Close(fd)
			return -1, errChanged
		}
	}
	return fd, nil
}

// openFileAt opens for reading the regular file name in dirfd, only if
// it still is the file want describes.
func openFileAt(dirfd int, name string, want *unix.Stat_t) (*os.File, error) {
	pfd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || !sameFile(&st, want) {
		return nil, errChanged
	}
	fd, err := unix.Open(procFD(pfd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reopen through %s (is /proc mounted?): %w", procFD(pfd), err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// chmodAt sets the mode of name in dirfd, never through a symlink
// (fchmodat has no AT_SYMLINK_NOFOLLOW on Linux before fchmodat2).
func chmodAt(dirfd int, name string, mode uint32) error {
	pfd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return errChanged
	}
	return unix.Chmod(procFD(pfd), mode)
}

// readNames lists the directory dirfd, sorted (archives come out the
// same for the same tree). dirfd stays open.
func readNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// openBeneath opens the directory rel (slash-separated, made by us) under
// rootfd, one component at a time and never through a symlink.
func openBeneath(rootfd int, rel string) (int, error) {
	fd, err := unix.Dup(rootfd)
	if err != nil {
		return -1, err
	}
	if rel == "." || rel == "" {
		return fd, nil
	}
	for _, c := range strings.Split(rel, "/") {
		next, err := openDirAt(fd, c, nil)
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("%s: %w", rel, err)
		}
		fd = next
	}
	return fd, nil
}

// openParent opens the directory holding path and returns it with the
// last component; path itself is ours (a template the admin named, or a
// root under Roots), the walk below it is not.
func openParent(path string) (int, string, error) {
	path = filepath.Clean(path)
	name := filepath.Base(path)
	if name == "/" || name == "." || name == ".." {
		return -1, "", fmt.Errorf("%s: not a directory entry rootprep can work on", path)
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("open %s: %w", filepath.Dir(path), err)
	}
	return fd, name, nil
}

// openRootDir opens the directory root of a walk: its parent (kept, as
// the root's own entry is looked at and set through it), the last
// component, the root itself (checked to be the directory looked at) and
// its stat. Errors name root.
func openRootDir(root string) (pfd int, name string, fd int, st unix.Stat_t, err error) {
	pfd, name, err = openParent(root)
	if err != nil {
		return -1, "", -1, st, err
	}
	fd, st, err = openDirChecked(pfd, name, root)
	if err != nil {
		unix.Close(pfd)
		return -1, "", -1, st, err
	}
	return pfd, name, fd, st, nil
}

func openDirChecked(pfd int, name, root string) (int, unix.Stat_t, error) {
	st, err := statAt(pfd, name)
	if err != nil {
		return -1, st, fmt.Errorf("lstat %s: %w", root, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -1, st, fmt.Errorf("%s: not a directory", root)
	}
	fd, err := openDirAt(pfd, name, &st)
	if err != nil {
		return -1, st, fmt.Errorf("%s: %w", root, err)
	}
	return fd, st, nil
}

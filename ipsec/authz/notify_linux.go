package authz

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fileChanges signals (coalescing) whenever the file at path is written
// and closed, created or renamed into place, until ctx ends: inotify on its directory, so that a writer that
// replaces the file by rename (as the borrower does) is seen too. The
// caller keeps its periodic check: inotify says nothing for a network
// file system changed on another host, or when the directory is
// replaced.
func fileChanges(ctx context.Context, path string) (*changes, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("authz: inotify: %w", err)
	}
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO|unix.IN_CREATE); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("authz: inotify watch of %s: %w", dir, err)
	}
	// Non-blocking, so the runtime's poller waits for it and Close
	// interrupts a read in progress.
	f := os.NewFile(uintptr(fd), "inotify:"+dir)
	out := &changes{c: make(chan struct{}, 1)}
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			n, err := f.Read(buf)
			if err != nil {
				return // closed at ctx's end, or broken: the periodic check stays
			}
			if named, inPlace := namesFile(buf[:n], name); named {
				if inPlace {
					out.inPlace.Store(true) // before the signal: Watch reads it after
				}
				select {
				case out.c <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, nil
}

// namesFile reports whether a read of inotify events names the file, and
// whether any of those is a write in place (or a lost event), not a
// rename onto it.
func namesFile(buf []byte, name string) (named, inPlace bool) {
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			return named, inPlace
		}
		raw := buf[unix.SizeofInotifyEvent:end]
		for i, c := range raw {
			if c == 0 {
				raw = raw[:i]
				break
			}
		}
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			return true, true
		}
		if string(raw) == name {
			named = true
			inPlace = inPlace || ev.Mask&unix.IN_MOVED_TO == 0
		}
		buf = buf[end:]
	}
	return named, inPlace
}

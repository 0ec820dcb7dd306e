package keeper

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"
)

// mountWatch wakes on changes of a mount table: the kernel marks an open
// /proc/PID/mountinfo with POLLPRI|POLLERR after each mount, unmount or
// remount in its namespace (proc(5)).
//
// The descriptor is a raw one, not an *os.File: Go's runtime would add
// the file to its own epoll set, and each poll of mountinfo consumes the
// event (the file remembers the last event it reported), so the runtime
// would take it from us.
type mountWatch struct{ fd int }

func newMountWatch(path string, log *slog.Logger) *mountWatch {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		log.Debug("mount table not watched; polling", "path", path, "err", err)
		return &mountWatch{fd: -1}
	}
	return &mountWatch{fd: fd}
}

// wait returns after the table changed or every elapsed, false once ctx is done.
func (w *mountWatch) wait(ctx context.Context, every time.Duration) bool {
	deadline := time.Now().Add(every)
	for ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		// Short slices so that ctx is seen promptly.
		slice := min(left, 50*time.Millisecond)
		if w.fd < 0 {
			time.Sleep(slice)
			continue
		}
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLPRI | unix.POLLERR}}
		n, err := unix.Poll(fds, int(slice/time.Millisecond))
		if err == nil && n > 0 && fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0 {
			// poll itself re-arms: the kernel records the event it reported.
			return true
		}
	}
	return false
}

func (w *mountWatch) close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
	}
}

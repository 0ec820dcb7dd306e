package rootprep

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// ioprio_set(2) values (linux/ioprio.h); x/sys/unix does not name them.
const (
	ioprioWhoProcess = 1
	ioprioClassBE    = 2
	ioprioClassShift = 13
	ioprioLowestBE   = ioprioClassBE<<ioprioClassShift | 7
)

// lowPriority runs fn on an OS thread of its own at the lowest CPU
// priority (nice 19) and the lowest best-effort I/O priority. A root copy
// is bulk work done while servers boot; the borrower's host meanwhile
// serves the NFS roots of running leases, image B and the gateway, which
// must not wait behind it. Best-effort rather than the idle I/O class:
// idle could starve a copy for as long as running leases keep the disks
// busy, and its server would wait in wait-root all that time. Failing to
// lower the priority (a seccomp filter, say) is not an error: the copy
// runs as before.
//
// The thread stays locked to fn's goroutine, which ends with fn: the Go
// runtime then ends the thread, and its lowered priority with it, instead
// of handing it to other goroutines.
func lowPriority(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		tid := unix.Gettid()
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, 19)
		_, _, _ = unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprioLowestBE)
		errc <- fn()
	}()
	return <-errc
}

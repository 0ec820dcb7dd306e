package disks

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// rescanMs is how often the watcher looks at /sys/block without a uevent:
// the safety net for lost uevents (a full socket buffer drops them) and
// for a medium inserted into a drive that had none.
const rescanMs = 1000

// Watcher keeps marking block devices read-only as they appear, from the
// disks-ro phase until the agent hands over (kexec, switch_root). The
// BLKROSET flag guards against accidents, not against root (the borrower's
// init may clear it once it runs); what the watcher closes is the window
// in which a disk that showed up late (a slow controller, a hot-plugged
// drive, partitions after a table re-read) stayed writable during
// ferry's own phases.
type Watcher struct {
	stopW, stopR int // pipe: Stop wakes the loop at once
	done         chan struct{}
	mu           sync.Mutex
	late         []string
}

// Watch starts a Watcher over /sys/block and /dev. known are the names
// the disks-ro phase marked; report is called with each name marked
// later (from the watcher's goroutine).
func Watch(known []string, log *slog.Logger, report func(name string)) *Watcher {
	return watch("/sys/block", "/dev", known, log, report)
}

func watch(sysBlock, devDir string, known []string, log *slog.Logger, report func(string)) *Watcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{stopW: -1, stopR: -1, done: make(chan struct{})}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		log.Warn("disks: watcher: no stop pipe; it polls until exec", "err", err)
	} else {
		w.stopR, w.stopW = p[0], p[1]
	}
	s := &scan{sysBlock: sysBlock, devDir: devDir, log: log, known: make(map[string]bool),
		marked: make(map[string]bool), failed: make(map[string]string)}
	for _, name := range known {
		s.known[name] = true
	}
	go func() {
		defer close(w.done)
		sock := openUevents(log)
		if sock >= 0 {
			defer unix.Close(sock)
		}
		for {
			for _, d := range s.pass() {
				w.mu.Lock()
				w.late = append(w.late, d)
				w.mu.Unlock()
				if report != nil {
					report(d)
				}
			}
			if !w.wait(sock, log) {
				return
			}
		}
	}()
	return w
}

// Late returns the names the watcher has marked so far.
func (w *Watcher) Late() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.late...)
}

// Stop ends the watcher (at most one pass in progress finishes) and
// returns the names it marked.
func (w *Watcher) Stop() []string {
	if w.stopW >= 0 {
		unix.Write(w.stopW, []byte{1})
	}
	<-w.done
	if w.stopW >= 0 {
		unix.Close(w.stopW)
		unix.Close(w.stopR)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.late...)
}

// wait blocks until a block-device uevent, rescanMs or Stop; false on
// Stop. Other uevents do not postpone the rescan.
func (w *Watcher) wait(sock int, log *slog.Logger) bool {
	end := time.Now().Add(rescanMs * time.Millisecond)
	for {
		fds := []unix.PollFd{{Fd: int32(w.stopR), Events: unix.POLLIN}, {Fd: int32(sock), Events: unix.POLLIN}}
		if sock < 0 {
			fds = fds[:1]
		}
		if w.stopR < 0 {
			fds[0].Fd = -1 // poll ignores negative descriptors
		}
		left := time.Until(end)
		if left <= 0 {
			return true
		}
		_, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			log.Warn("disks: watcher: poll", "err", err)
		}
		if fds[0].Revents != 0 {
			return false
		}
		if sock < 0 || fds[1].Revents == 0 || drainUevents(sock) {
			return true // the timer, or a block device
		}
	}
}

// openUevents subscribes to the kernel's uevents (a device appears:
// rescan at once); -1 when it cannot, the timer then does all the work.
func openUevents(log *slog.Logger) int {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1})
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		log.Warn("disks: watcher: no uevent socket; rescanning every second only", "err", err)
		return -1
	}
	return fd
}

// drainUevents reads what is queued and reports whether any of it was
// about a block device, or was lost (ENOBUFS): then a pass looks at
// /sys/block, which is the truth; the messages' other fields are not
// trusted or needed.
func drainUevents(sock int) (block bool) {
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(sock, buf, 0)
		if errors.Is(err, unix.ENOBUFS) {
			block = true
			continue
		}
		if err != nil || n <= 0 {
			return block
		}
		if bytes.Contains(buf[:n], []byte("\x00SUBSYSTEM=block\x00")) {
			block = true
		}
	}
}

// scan is the watcher's view of what it has marked.
type scan struct {
	sysBlock, devDir string
	log              *slog.Logger
	// known: names disks-ro marked; the first pass turns each into a key
	// of marked, so a device that later takes the same name with another
	// number is marked too.
	known  map[string]bool
	marked map[string]bool   // name "@" MAJOR:MINOR
	failed map[string]string // key -> last error logged
}

// pass marks every candidate not marked yet and returns their names. A
// failure is logged once per device and error, and retried next pass.
func (s *scan) pass() []string {
	devs, err := Candidates(s.sysBlock)
	if err != nil {
		if s.failed[""] != err.Error() {
			s.log.Warn("disks: watcher: list block devices", "err", err)
			s.failed[""] = err.Error()
		}
		return nil
	}
	var out []string
	for _, d := range devs {
		key := d.Name + "@" + d.Dev
		if s.known[d.Name] {
			delete(s.known, d.Name)
			s.marked[key] = true
		}
		if s.marked[key] {
			continue
		}
		node := d.Node(s.devDir)
		err := checkNode(node, d.Dev)
		if err == nil {
			err = SetReadOnly(node)
		}
		if err != nil {
			if s.failed[key] != err.Error() {
				level := slog.LevelWarn
				if errors.Is(err, unix.ENOMEDIUM) || errors.Is(err, unix.ENXIO) {
					level = slog.LevelInfo // an empty drive; retried, a medium may come
				}
				s.log.Log(context.Background(), level, "disks: device appeared, not marked read-only yet", "device", d.Name, "dev", d.Dev, "err", err)
				s.failed[key] = err.Error()
			}
			continue
		}
		s.log.Info("disks: read-only (appeared after disks-ro)", "device", d.Name, "dev", d.Dev)
		s.marked[key] = true
		out = append(out, d.Name)
	}
	return out
}

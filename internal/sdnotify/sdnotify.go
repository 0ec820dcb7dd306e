// Package sdnotify tells systemd how a Type=notify service is doing
// (sd_notify(3)): one datagram of newline-separated VAR=VALUE lines to the
// unix socket named by $NOTIFY_SOCKET. Written here rather than taken from
// github.com/coreos/go-systemd: the protocol is one sendto, and ferry needs
// nothing else of that module.
package sdnotify

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// States ferry sends.
const (
	Ready     = "READY=1"
	Stopping  = "STOPPING=1"
	Reloading = "RELOADING=1"
)

// ReloadingNow is what a service sends as a reload starts: RELOADING=1
// and MONOTONIC_USEC, the CLOCK_MONOTONIC time in microseconds, by which
// systemd (Type=notify-reload, 253 and later) tells this reload from an
// earlier one; READY=1 ends it. Older systemd ignores MONOTONIC_USEC.
func ReloadingNow() []string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return []string{Reloading} // cannot happen on Linux
	}
	return []string{Reloading, "MONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10)}
}

// Notifier sends to one socket. The zero Notifier (no $NOTIFY_SOCKET: not
// started by systemd, or Type=simple) sends nothing.
type Notifier struct {
	Socket string
}

// FromEnv is the notifier for the socket getenv("NOTIFY_SOCKET") names.
func FromEnv(getenv func(string) string) Notifier {
	return Notifier{Socket: getenv("NOTIFY_SOCKET")}
}

// Enabled says whether there is a socket to send to.
func (n Notifier) Enabled() bool { return n.Socket != "" }

// Notify sends the state lines (e.g. Ready, "STATUS=serving") in one
// datagram. Without a socket it does nothing. A leading '@' names an
// abstract socket, as systemd allows.
func (n Notifier) Notify(lines ...string) error {
	if n.Socket == "" {
		return nil
	}
	path := n.Socket
	if path[0] != '/' && path[0] != '@' {
		return fmt.Errorf("sd_notify: NOTIFY_SOCKET=%q: want an absolute path or @abstract", path)
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.Socket, err)
	}
	defer c.Close()
	msg := strings.Join(lines, "\n")
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sd_notify %s %q: %w", n.Socket, msg, err)
	}
	return nil
}

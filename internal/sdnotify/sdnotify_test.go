package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen is systemd's end: a unixgram socket that receives the states.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

// READY=1 and STOPPING=1 arrive as the datagrams systemd reads, on a
// filesystem socket and on an abstract one.
func TestNotifySendsOneDatagramPerCall(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@ferry-sdnotify-test-" + strings.ReplaceAll(t.Name(), "/", "-")} {
		addr := name
		if addr[0] == '@' {
			addr = "\x00" + addr[1:]
		}
		c := listen(t, addr)
		n := FromEnv(func(k string) string {
			if k == "NOTIFY_SOCKET" {
				return name
			}
			return ""
		})
		if err := n.Notify(Ready, "STATUS=serving"); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, c); got != "READY=1\nSTATUS=serving" {
			t.Fatalf("%s: got %q", name, got)
		}
		if err := n.Notify(Stopping); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, c); got != "STOPPING=1" {
			t.Fatalf("%s: got %q", name, got)
		}
	}
}

// Outside systemd nothing is sent and nothing fails; a relative path is
// refused rather than sent to whatever it resolves to.
func TestNotifyWithoutSocket(t *testing.T) {
	if err := (Notifier{}).Notify(Ready); err != nil {
		t.Fatal(err)
	}
	if err := (Notifier{Socket: "notify"}).Notify(Ready); err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Fatalf("relative NOTIFY_SOCKET: %v", err)
	}
	if err := (Notifier{Socket: filepath.Join(t.TempDir(), "gone")}).Notify(Ready); err == nil {
		t.Fatal("a missing socket did not fail")
	}
}

// A reload starts with RELOADING=1 and the monotonic clock in
// microseconds, as sd_notify(3) asks for Type=notify-reload: close to
// CLOCK_MONOTONIC now (which /proc/uptime approximates: it counts the
// same clock, suspended time aside), and rising from one reload to the next.
func TestReloadingCarriesMonotonicUsec(t *testing.T) {
	usec := func() int64 {
		l := ReloadingNow()
		if len(l) != 2 || l[0] != "RELOADING=1" || !strings.HasPrefix(l[1], "MONOTONIC_USEC=") {
			t.Fatalf("ReloadingNow() = %q", l)
		}
		var n int64
		if _, err := fmt.Sscan(strings.TrimPrefix(l[1], "MONOTONIC_USEC="), &n); err != nil {
			t.Fatalf("%q: %v", l[1], err)
		}
		return n
	}
	a := usec()
	time.Sleep(2 * time.Millisecond)
	b := usec()
	if b <= a {
		t.Fatalf("MONOTONIC_USEC went from %d to %d", a, b)
	}
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Skip(err)
	}
	var secs float64
	fmt.Sscan(string(up), &secs)
	if d := float64(b)/1e6 - secs; d < -5 || d > 5 {
		t.Fatalf("MONOTONIC_USEC %d is %.1f s from the uptime %.2f s: not CLOCK_MONOTONIC in microseconds", b, d, secs)
	}
}

package svctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/internal/syncbuf"
	"ferry/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

func ferryBin() string { return testbin.Path() }

// notifySocket is systemd's end of sd_notify: a unixgram socket.
type notifySocket struct {
	path string
	c    *net.UnixConn
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifySocket{path: path, c: c}
}

// next is the next datagram the service sent, failing t after 20 s.
func (n *notifySocket) next(t *testing.T, p *proc) string {
	t.Helper()
	n.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, 1024)
	k, err := n.c.Read(b)
	if err != nil {
		t.Fatalf("sd_notify: %v; the service's log:\n%s", err, p.log)
	}
	return string(b[:k])
}

// expect reads the next datagram and fails t unless its first line is first.
func (n *notifySocket) expect(t *testing.T, p *proc, first string) string {
	t.Helper()
	got := n.next(t, p)
	if strings.SplitN(got, "\n", 2)[0] != first {
		t.Fatalf("sd_notify: got %q, want %s first; the service's log:\n%s", got, first, p.log)
	}
	return got
}

// proc is a service process.
type proc struct {
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	done chan error
}

// start runs cmd with NOTIFY_SOCKET=n and stops it at the end of the
// test: SIGTERM, then SIGKILL after 15 s.
func start(t *testing.T, cmd *exec.Cmd, n *notifySocket) *proc {
	t.Helper()
	p := &proc{cmd: cmd, log: &syncbuf.Buffer{}, done: make(chan error, 1)}
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+n.path)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if p.stop(15*time.Second) != nil {
			t.Logf("the service's log:\n%s", p.log)
		}
	})
	return p
}

// signal sends sig to the service; under `ip netns exec` that is the
// ferry process itself, which ip execs.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v: %v", sig, err)
	}
}

// stop sends SIGTERM and waits up to grace, then SIGKILL; it returns
// how the process ended.
func (p *proc) stop(grace time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(grace):
		p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		return fmt.Errorf("not stopped %v after SIGTERM: killed (%v)", grace, err)
	}
}

// waitLog waits until the log has a line with every one of parts,
// and returns that line.
func (p *proc) waitLog(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, line := range strings.Split(p.log.String(), "\n") {
			all := true
			for _, s := range parts {
				all = all && strings.Contains(line, s)
			}
			if all {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q; the log:\n%s", parts, p.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countLog is how many log lines contain s.
func (p *proc) countLog(s string) int { return strings.Count(p.log.String(), s) }

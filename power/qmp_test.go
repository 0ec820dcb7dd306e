package power

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeQMP answers like QEMU: greeting, capabilities, then each command via
// answer, with an event before every answer.
func fakeQMP(t *testing.T, answer func(cmd string) string) (string, *[]string) {
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var cmds []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(`{"QMP": {"version": {}, "capabilities": ["oob"]}}` + "\n"))
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				var m struct{ Execute string }
				json.Unmarshal(sc.Bytes(), &m)
				if m.Execute == "qmp_capabilities" {
					c.Write([]byte(`{"return": {}}` + "\n"))
					continue
				}
				cmds = append(cmds, m.Execute)
				c.Write([]byte(`{"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}}` + "\n" + answer(m.Execute) + "\n"))
			}
			c.Close()
		}
	}()
	return sock, &cmds
}

func TestQMPSkipsEventsAndMapsStatus(t *testing.T) {
	for status, want := range map[string]State{`"running": true, "status": "running"`: StateOn, `"running": false, "status": "prelaunch"`: StatePaused, `"running": false, "status": "shutdown"`: StateOff} {
		sock, _ := fakeQMP(t, func(string) string { return `{"return": {` + status + `}}` })
		d, _ := New("qmp", map[string]string{"socket": sock}, nil)
		if st, err := d.Status(context.Background()); err != nil || st != want {
			t.Errorf("%s: %v, %v", status, st, err)
		}
	}
}

func TestQMPOnAfterShutdownResetsThenContinues(t *testing.T) {
	sock, cmds := fakeQMP(t, func(cmd string) string {
		if cmd == "query-status" {
			return `{"return": {"running": false, "status": "shutdown"}}`
		}
		return `{"return": {}}`
	})
	d, _ := New("qmp", map[string]string{"socket": sock}, nil)
	if err := d.On(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(*cmds, ","); got != "query-status,system_reset,cont" {
		t.Fatalf("commands %s", got)
	}
}

func TestQMPErrorNamesCommandAndClass(t *testing.T) {
	sock, _ := fakeQMP(t, func(string) string { return `{"error": {"class": "GenericError", "desc": "nope"}}` })
	d, _ := New("qmp", map[string]string{"socket": sock}, nil)
	err := d.Reset(context.Background())
	if err == nil || !strings.Contains(err.Error(), "power qmp reset: "+sock+": system_reset: GenericError: nope") {
		t.Fatalf("err = %v", err)
	}
}

func TestQMPMissingSocketNamesOption(t *testing.T) {
	d, _ := New("qmp", map[string]string{"socket": "/nonexistent/qmp.sock"}, nil)
	if err := d.Off(context.Background()); err == nil || !strings.Contains(err.Error(), `(option "socket")`) {
		t.Fatalf("err = %v", err)
	}
}

// TestQMPDrivesRealQEMU starts QEMU paused (-S) with no disk and walks it
// through on, reset, off (stop) and on again.
func TestQMPDrivesRealQEMU(t *testing.T) {
	if os.Getenv("FERRY_QEMU") != "1" {
		t.Skip("set FERRY_QEMU=1 to run QEMU")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("no qemu-system-x86_64")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-m", "64", "-nographic", "-nodefaults", "-S",
		"-qmp", "unix:"+sock+",server=on,wait=off", "-display", "none", "-monitor", "none", "-serial", "none")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	d, err := New("qmp", map[string]string{"socket": sock, "off": "stop"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for { // until QEMU listens
		if _, err := d.Status(ctx); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	steps := []struct {
		name string
		op   func(context.Context) error
		want State
	}{
		{"initial", nil, StatePaused}, {"on", d.On, StateOn}, {"reset", d.Reset, StateOn},
		{"off", d.Off, StatePaused}, {"on again", d.On, StateOn},
	}
	for _, s := range steps {
		if s.op != nil {
			if err := s.op(ctx); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		if st, err := d.Status(ctx); err != nil || st != s.want {
			t.Fatalf("after %s: %v, %v; want %v", s.name, st, err, s.want)
		}
	}
	q, _ := New("qmp", map[string]string{"socket": sock, "off": "quit"}, nil)
	if err := q.Off(ctx); err != nil {
		t.Fatalf("quit: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("QEMU after quit: %v", err)
	}
}

func TestQMPOffAfterQEMUExitedIsAlreadyOff(t *testing.T) {
	// QEMU exits when its guest powers itself off: its socket goes away
	// (or refuses) while the directory stays.
	dir := t.TempDir()
	d, _ := New("qmp", map[string]string{"socket": filepath.Join(dir, "qmp.sock")}, nil)
	if err := d.Off(context.Background()); err != nil {
		t.Fatalf("Off with QEMU gone: %v", err)
	}
	if st, err := d.Status(context.Background()); err != nil || st != StateOff {
		t.Fatalf("Status with QEMU gone = %v, %v; want off", st, err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "stale.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	d, _ = New("qmp", map[string]string{"socket": filepath.Join(dir, "stale.sock")}, nil)
	if err := d.Off(context.Background()); err != nil {
		t.Fatalf("Off with a stale socket: %v", err)
	}
}

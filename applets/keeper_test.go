package applets

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `ferry keeper` (this test binary as ferry) is a supervisor: its child,
// the keeper proper, re-executed as "@ferry keeper --child", answers
// status; killed, it is started again after the first delay (1 s), and
// the new one's status says so.
func TestKeeperAppletRestartsTheKeeper(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// A file, not a pipe: an orphaned child would hold a pipe open.
	logs, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	logText := func() string { b, _ := os.ReadFile(logs.Name()); return string(b) }
	cmd := exec.Command(exe, "keeper", "--listen", addr, "--state", t.TempDir(), "--trace", "T1")
	cmd.Env = append(os.Environ(), "FERRY_TEST_AS_FERRY=1")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var children []int
	t.Cleanup(func() {
		// The supervisor first, so that it restarts nothing; then every
		// child it had.
		cmd.Process.Kill()
		cmd.Wait()
		for _, pid := range children {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	status := func(notPID int) map[string]any {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := http.Get("http://" + addr + "/status")
			if err == nil {
				var st map[string]any
				err = json.NewDecoder(resp.Body).Decode(&st)
				resp.Body.Close()
				if pid, _ := st["pid"].(float64); err == nil && int(pid) != notPID {
					children = append(children, int(pid))
					return st
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no status from a keeper other than pid %d at %s within 20 s; logs:\n%s", notPID, addr, logText())
		return nil
	}
	st := status(0)
	first := children[0]
	sup, _ := st["supervisor"].(map[string]any)
	if first == cmd.Process.Pid || st["restarts"] != 0.0 || sup["pid"] != float64(cmd.Process.Pid) {
		t.Fatalf("first status %v: want the child's (supervisor pid %d), no restart", st, cmd.Process.Pid)
	}
	argv, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", first))
	if !strings.HasPrefix(string(argv), "@ferry\x00keeper\x00--child\x00") {
		t.Errorf("child's argv %q, want @ferry keeper --child ...", argv)
	}
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = status(first)
	if st["restarts"] != 1.0 || st["last_restart_reason"] != "killed by SIGKILL" || st["trace"] != "T1" {
		t.Errorf("status after the kill: restarts %v, reason %v, trace %v; want 1, killed by SIGKILL, T1",
			st["restarts"], st["last_restart_reason"], st["trace"])
	}
	if !strings.Contains(logText(), "keeper ended abnormally; restarting it") {
		t.Errorf("no restart in the supervisor's log:\n%s", logText())
	}
}

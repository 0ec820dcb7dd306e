package keeper

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeRoot is a directory standing in for the borrower's root, with the
// given scripts (path in the root -> body after "#!/bin/sh").
func fakeRoot(t *testing.T, scripts map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, body := range scripts {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// otherInit is a process standing in for an init that is neither
// systemd nor busybox (its exe is sleep), and a channel with its end.
func otherInit(t *testing.T) (*exec.Cmd, chan error) {
	t.Helper()
	c := exec.Command("sleep", "60")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	t.Cleanup(func() { c.Process.Kill() })
	return c, done
}

func ended(done chan error, within time.Duration) bool {
	select {
	case <-done:
		return true
	case <-time.After(within):
		return false
	}
}

func TestAutoRunsTheRootsPoweroffForAnotherInit(t *testing.T) {
	root := fakeRoot(t, map[string]string{
		// It records how it was called: no argument, the keeper's fixed
		// environment, nothing of the request.
		"/sbin/poweroff": `echo "argc=$# path=$PATH input=$(cat)" >"$(dirname "$0")/../ran"; echo "Shutting down"`,
	})
	init, done := otherInit(t)
	a, err := PowerOff{Signal: "auto", InitPID: init.Process.Pid, Root: root}.ask(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a.Command != "/sbin/poweroff" || a.Signal != 0 || a.Output != "Shutting down" || a.Note != "" {
		t.Fatalf("asked %+v, want /sbin/poweroff run, saying \"Shutting down\"", a)
	}
	ran, err := os.ReadFile(filepath.Join(root, "ran"))
	if err != nil {
		t.Fatalf("the root's poweroff did not run: %v", err)
	}
	if want := "argc=0 path=/usr/sbin:/usr/bin:/sbin:/bin input=\n"; string(ran) != want {
		t.Fatalf("the root's poweroff ran as %q, want %q", ran, want)
	}
	if ended(done, 200*time.Millisecond) {
		t.Fatal("the init was signalled as well")
	}
}

func TestCommandLooksInSbinUsrSbinBinUsrBinInThatOrder(t *testing.T) {
	root := fakeRoot(t, map[string]string{"/usr/bin/poweroff": "echo usr-bin", "/bin/poweroff": "echo bin"})
	a, err := PowerOff{Signal: "command", Root: root}.ask(context.Background())
	if err != nil || a.Command != "/bin/poweroff" || a.Output != "bin" {
		t.Fatalf("asked %+v, %v; want /bin/poweroff", a, err)
	}
}

func TestCommandWritableByOthersIsNotRun(t *testing.T) {
	root := fakeRoot(t, map[string]string{"/sbin/poweroff": "touch /tmp/never; echo planted", "/usr/sbin/poweroff": "echo the-roots"})
	// chmod, not the umask: the file must be writable by others.
	if err := os.Chmod(filepath.Join(root, "sbin/poweroff"), 0o757); err != nil {
		t.Fatal(err)
	}
	a, err := PowerOff{Signal: "command", Root: root}.ask(context.Background())
	if err != nil || a.Command != "/usr/sbin/poweroff" || a.Output != "the-roots" {
		t.Fatalf("asked %+v, %v; want the other-writable /sbin/poweroff skipped for /usr/sbin/poweroff", a, err)
	}
	if err := os.Chmod(filepath.Join(root, "usr/sbin/poweroff"), 0o775); err != nil {
		t.Fatal(err)
	}
	_, err = PowerOff{Signal: "command", Root: root}.ask(context.Background())
	if err == nil || !strings.Contains(err.Error(), "/sbin/poweroff: writable by group or others") {
		t.Fatalf("two writable poweroffs: %v, want an error naming them", err)
	}
}

func TestAutoWithoutAPoweroffFallsBackToSIGUSR2AndSaysSo(t *testing.T) {
	root := fakeRoot(t, map[string]string{"/sbin/halt": "exit 0"})
	init, done := otherInit(t)
	a, err := PowerOff{Signal: "auto", InitPID: init.Process.Pid, Root: root}.ask(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a.Signal != syscall.SIGUSR2 || a.Command != "" || !strings.Contains(a.Note, "the root has no poweroff in /sbin/poweroff") {
		t.Fatalf("asked %+v, want SIGUSR2 with a note that the root has no poweroff", a)
	}
	if !ended(done, 5*time.Second) {
		t.Fatal("the init got no SIGUSR2")
	}
	if ws := init.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGUSR2 {
		t.Fatalf("init ended %v, want by SIGUSR2", init.ProcessState)
	}
}

func TestCommandSettingWithoutAPoweroffIsAnError(t *testing.T) {
	init, done := otherInit(t)
	_, err := PowerOff{Signal: "command", InitPID: init.Process.Pid, Root: t.TempDir()}.ask(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no poweroff") {
		t.Fatalf("err %v, want one saying the root has no poweroff", err)
	}
	if ended(done, 200*time.Millisecond) {
		t.Fatal("the init was signalled although the setting says command")
	}
}

func TestCommandThatFailsIsReportedWithItsOutput(t *testing.T) {
	root := fakeRoot(t, map[string]string{"/sbin/poweroff": `echo "shutdown: /run/initctl: No such file" >&2; exit 3`})
	init, done := otherInit(t)
	a, err := PowerOff{Signal: "auto", InitPID: init.Process.Pid, Root: root}.ask(context.Background())
	if err == nil || !strings.Contains(err.Error(), "/sbin/poweroff: exit status 3") || !strings.Contains(err.Error(), "/run/initctl: No such file") {
		t.Fatalf("err %v, want exit status 3 and the output", err)
	}
	if a.Command != "/sbin/poweroff" {
		t.Fatalf("asked %+v", a)
	}
	if ended(done, 200*time.Millisecond) {
		t.Fatal("a failed command fell back to a signal: an unknown init may take it for something else")
	}
}

func TestCommandThatHangsIsKilledWithWhatItStartedAtTheBound(t *testing.T) {
	root := fakeRoot(t, map[string]string{
		"/sbin/poweroff": `echo $$ >"$(dirname "$0")/../pids"; sleep 60 & echo $! >>"$(dirname "$0")/../pids"; echo waiting; wait`,
	})
	t0 := time.Now()
	_, err := PowerOff{Signal: "command", Root: root, Timeout: 300 * time.Millisecond}.ask(context.Background())
	if err == nil || !strings.Contains(err.Error(), "did not finish within 300ms (killed)") || !strings.Contains(err.Error(), "waiting") {
		t.Fatalf("err %v, want the bound named, with the output", err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("answered after %s: the bound did not hold", d)
	}
	b, _ := os.ReadFile(filepath.Join(root, "pids"))
	pids := strings.Fields(string(b))
	if len(pids) != 2 {
		t.Fatalf("pids %q, want the script's and its child's", b)
	}
	for _, p := range pids {
		pid, _ := strconv.Atoi(p)
		// Killed: gone, or a zombie until its parent (init, for the child) reaps it.
		deadline := time.Now().Add(3 * time.Second)
		for {
			st, err := os.ReadFile("/proc/" + p + "/stat")
			if err != nil || strings.Contains(string(st), ") Z ") {
				break
			}
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("process %d of the hung command still runs", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestCommandOutputIsBounded(t *testing.T) {
	root := fakeRoot(t, map[string]string{"/sbin/poweroff": `i=0; while [ $i -lt 2000 ]; do echo "line $i of a chatty poweroff"; i=$((i+1)); done`})
	a, err := PowerOff{Signal: "command", Root: root}.ask(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Output) > outputMax+40 || !strings.HasSuffix(a.Output, "bytes more]") || !strings.HasPrefix(a.Output, "line 0 ") {
		t.Fatalf("output of %d bytes ending %q, want at most %d and a count of the rest", len(a.Output), a.Output[max(0, len(a.Output)-60):], outputMax)
	}
}

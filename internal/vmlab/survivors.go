package vmlab

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RunTagEnv is set in the environment of every process the lab starts
// (Start): children inherit it through ip netns exec, unshare, setsid and
// daemons that fork, so what a run started can be found after it, even
// once it has left its process group. scripts/no-survivors.sh does the
// same for the shell lab.
const RunTagEnv = "FERRY_LAB_RUN"

// runTag is this test process's tag: its pid, unique while it runs.
func runTag() string { return "vmlab-" + strconv.Itoa(os.Getpid()) }

// Survivor is a live process carrying a run's tag.
type Survivor struct {
	Pid  int
	Args string
}

func (s Survivor) String() string { return fmt.Sprintf("%d %s", s.Pid, s.Args) }

// Survivors lists the live processes whose environment holds
// RunTagEnv=tag. Processes that exit or cannot be read meanwhile are
// skipped; zombies (an empty environ) do not count.
func Survivors(tag string) []Survivor {
	want := []byte(RunTagEnv + "=" + tag)
	paths, _ := filepath.Glob("/proc/[0-9]*/environ")
	var out []Survivor
	for _, p := range paths {
		env, err := os.ReadFile(p)
		if err != nil || !hasEntry(env, want) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		args, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		out = append(out, Survivor{Pid: pid, Args: strings.TrimSpace(string(bytes.ReplaceAll(args, []byte{0}, []byte{' '})))})
	}
	return out
}

func hasEntry(environ, entry []byte) bool {
	for _, e := range bytes.Split(environ, []byte{0}) {
		if bytes.Equal(e, entry) {
			return true
		}
	}
	return false
}

// NoSurvivors makes t fail when a process the lab started (Start) is still
// alive after every other cleanup of t has run: call it first in a lab
// test, so its cleanup runs last. Survivors are listed, then killed so the
// next run starts clean.
func NoSurvivors(t testing.TB) {
	t.Cleanup(func() {
		if left := endSurvivors(runTag(), 2*time.Second); len(left) > 0 {
			t.Errorf("%d process(es) the lab started outlived the run (killed now):\n%s", len(left), strings.Join(left, "\n"))
		}
	})
}

// endSurvivors waits up to grace for the processes tagged tag to go,
// then SIGKILLs the ones left and returns them.
func endSurvivors(tag string, grace time.Duration) []string {
	var left []Survivor
	waitFor(grace, func() bool { left = Survivors(tag); return len(left) == 0 })
	var out []string
	for _, s := range left {
		syscall.Kill(s.Pid, syscall.SIGKILL)
		out = append(out, s.String())
	}
	return out
}

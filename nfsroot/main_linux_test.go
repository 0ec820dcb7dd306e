package nfsroot

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Environment variables by which the test binary re-runs itself.
const (
	envChild  = "FERRY_NFSROOT_CHILD"   // run this test's body in a private mount namespace
	envAsInit = "FERRY_NFSROOT_AS_INIT" // we were exec'd by switchRoot: report and exit
	envOldFD  = "FERRY_NFSROOT_OLD_FD"  // fd of the old root, kept open across exec
)

func TestMain(m *testing.M) {
	if os.Getenv(envAsInit) == "1" {
		os.Exit(reportAsInit())
	}
	os.Exit(m.Run())
}

// initReport is what the test binary, exec'd as init by switchRoot, sees.
type initReport struct {
	Args      []string
	Cwd       string
	Pid       int
	RootFiles []string // entries of the new "/"
	OldRoot   []string // entries left in the old root (by the fd kept open)
	OldRootOK bool     // the fd could be read
	OldErr    string
	DevMarker bool // /dev was moved
	ProcSelf  bool // /proc was moved
	SysKernel bool // /sys was moved
	RunExists bool // /run had no place in the new root: detached
}

func reportAsInit() int {
	r := initReport{Args: os.Args, Pid: os.Getpid()}
	r.Cwd, _ = os.Getwd()
	if ents, err := os.ReadDir("/"); err == nil {
		for _, e := range ents {
			r.RootFiles = append(r.RootFiles, e.Name())
		}
	}
	if fd, err := strconv.Atoi(os.Getenv(envOldFD)); err == nil {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/self/fd/%d", fd))
		r.OldRootOK = err == nil
		if err != nil {
			r.OldErr = err.Error()
		}
		for _, e := range ents {
			r.OldRoot = append(r.OldRoot, e.Name())
		}
	} else {
		r.OldErr = "no " + envOldFD
	}
	_, err := os.Stat("/dev/devmarker")
	r.DevMarker = err == nil
	_, err = os.Stat("/proc/self/status")
	r.ProcSelf = err == nil
	_, err = os.Stat("/sys/kernel")
	r.SysKernel = err == nil
	_, err = os.Stat("/run")
	r.RunExists = err == nil
	b, _ := json.Marshal(r)
	fmt.Printf("\nINIT-REPORT %s\n", b)
	return 0
}

// inChild reports whether this process is the re-run of test t in a
// private mount namespace. When it is not, it re-runs the test binary for
// t alone in a fresh mount namespace, fails t if the child fails, and
// returns false with the child's output in *out.
func inChild(t *testing.T, out *string, env ...string) bool {
	t.Helper()
	if os.Getenv(envChild) == t.Name() {
		// Belt and braces: the namespace is new, make sure nothing leaks back.
		if err := unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Fatalf("mount(none, /, MS_REC|MS_PRIVATE) = %v", err)
		}
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for mount namespaces")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(append(os.Environ(), envChild+"="+t.Name()), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	b, err := cmd.CombinedOutput()
	*out = string(b)
	if err != nil {
		t.Fatalf("child %s: %v\n%s", t.Name(), err, b)
	}
	if strings.Contains(*out, "--- SKIP") {
		t.Skipf("child skipped:\n%s", b)
	}
	return false
}

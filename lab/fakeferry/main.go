// fakeferry is a lab-only stand-in for the few things of ferry's image B that
// a busybox shell cannot do, so that scripts/rehearse.sh can exercise the lab
// (ganesha, the NFS root's checking init, e2e.sh's assertions) before the
// real ferry binary exists. It is NOT ferry and is not shipped.
//
//	fakeferry mount-nfs SOURCE TARGET OPTIONS   mount(2) "nfs4" with text options
//	fakeferry keeper ROOT TRACE SOURCE           daemon: re-exec as "@ferry keeper"
//	                                             chrooted into ROOT, serve :7070/status
//
// Its own module (lab/fakeferry/go.mod) keeps it out of `go test ./...`.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) >= 2 && os.Args[0] == "@ferry" && os.Args[1] == "keeper" {
		keeper(os.Args[2], os.Args[3], os.Args[4])
		return
	}
	if len(os.Args) < 2 {
		fail("usage: fakeferry mount-nfs|keeper ...")
	}
	switch os.Args[1] {
	case "mount-nfs":
		if len(os.Args) != 5 {
			fail("usage: fakeferry mount-nfs SOURCE TARGET OPTIONS")
		}
		if err := syscall.Mount(os.Args[2], os.Args[3], "nfs4", 0, os.Args[4]); err != nil {
			fail("mount %s on %s: %v", os.Args[2], os.Args[3], err)
		}
	case "keeper":
		if len(os.Args) != 5 {
			fail("usage: fakeferry keeper ROOT TRACE SOURCE")
		}
		// Re-exec with argv[0] "@ferry", detached, chrooted before the exec
		// (so the caller may switch_root as soon as this returns).
		attr := &syscall.ProcAttr{
			Dir:   "/",
			Env:   []string{"PATH=/bin:/sbin"},
			Files: []uintptr{0, 1, 2},
			Sys:   &syscall.SysProcAttr{Setsid: true, Chroot: os.Args[2]},
		}
		pid, err := syscall.ForkExec("/proc/self/exe",
			[]string{"@ferry", "keeper", os.Args[2], os.Args[3], os.Args[4]}, attr)
		if err != nil {
			fail("start keeper: %v", err)
		}
		fmt.Println(pid)
	default:
		fail("unknown command %q", os.Args[1])
	}
}

func keeper(root, trace, source string) {
	start := time.Now() // already chrooted into root by the parent
	http.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"trace": trace, "pid": os.Getpid(), "root_fstype": rootFstype(),
			"root_source": source, "state_dir": "/ferry/state",
			"uptime_seconds": time.Since(start).Seconds(), "fake": true,
		})
	})
	fail("keeper: %v", http.ListenAndServe(":7070", nil))
}

// rootFstype reads the type of the last mount on "/" as seen from this root.
func rootFstype() string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "unknown: " + err.Error()
	}
	t := ""
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[1] == "/" {
			t = f[2]
		}
	}
	return t
}

func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "fakeferry: "+f+"\n", a...)
	os.Exit(1)
}

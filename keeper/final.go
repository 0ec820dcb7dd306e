package keeper

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The last step of a systemd root's shutdown. systemd-shutdown, once it
// has killed what it may and remounted every file system read-only, does
// not power off itself when /run/initramfs/shutdown exists: it pivots
// into /run/initramfs (the old root at /oldroot, /proc bound in) and execs
// that program as PID 1 with the verb (poweroff, reboot, halt, kexec), as
// dracut's shutdown does. Image B places ferry there. Without it the
// keeper, spared as "@ferry", has milliseconds between the read-only
// remount and reboot(2) to send its IKE DELETE and loses the race: the
// gateway and the borrower's return then wait for dead-peer detection.
// systemd-shutdown also leaves network file systems writable (it skips
// their read-only remount). As /shutdown, ferry syncs, remounts them
// read-only, tells the keeper to stop (SIGTERM: it deletes the tunnel, the
// NFS root being read-only), waits for it, then powers off.

// RebootVerbs are the verbs systemd-shutdown passes.
var RebootVerbs = []string{"poweroff", "reboot", "halt", "kexec"}

// Keepers lists the processes under proc whose argv[0] is "@ferry" (or
// starts so), other than self.
func Keepers(proc string, self int) []int {
	ents, _ := os.ReadDir(proc)
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		arg0, _, _ := strings.Cut(string(b), "\x00")
		if strings.HasPrefix(arg0, "@ferry") {
			out = append(out, pid)
		}
	}
	return out
}

// CheckVerb refuses anything systemd-shutdown does not pass.
func CheckVerb(verb string) error {
	for _, v := range RebootVerbs {
		if v == verb {
			return nil
		}
	}
	return fmt.Errorf("verb %q: want one of %s", verb, strings.Join(RebootVerbs, ", "))
}

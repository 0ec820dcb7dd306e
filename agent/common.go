package agent

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"ferry/disks"
	"ferry/keeper"
)

// State is what A hands to B inside the appended segment.
type State struct {
	Trace string `json:"trace"`
	// IP is the network configuration A applied, in the static ip= syntax:
	// A's static ip= as given, or what A's DHCP lease granted. B applies it
	// as is, keeping the address the lender, the gateway and the borrower
	// saw, without asking DHCP again.
	IP string `json:"ip"`
	// DHCP records A's lease when A used DHCP (nobody renews it).
	DHCP     *DHCPRecord `json:"dhcp,omitempty"`
	Settings Settings    `json:"settings"`
	// Lease is set in managed mode; the identity is in TunnelDir.
	Lease *Lease `json:"lease,omitempty"`
	// DataPlane is A's ferry.dataplane choice, which B's keeper follows.
	DataPlane keeper.DataPlane `json:"dataplane,omitempty"`
	// Disks are the block devices A marked read-only (disks-ro and
	// after); B compares what it sees. Absent (nil) from an older A.
	Disks []string `json:"disks"`
}

func (a *Agent) carriedState() *State {
	ip := a.ipConfig
	if ip == "" {
		ip, _ = a.cmd.Get("ip")
	}
	a.checkLeaseOutlastsLending()
	plane, _ := a.dataPlane() // checked by tunnel-a in managed mode
	return &State{Trace: a.trace, IP: ip, DHCP: a.dhcp, Settings: *a.settings, Lease: a.lease, DataPlane: plane,
		Disks: a.disksMarked()}
}

// disksReadOnly marks every local disk read-only as soon as the drivers
// that show them are loaded, before anything could write: the lent server's
// disk is the lender's, never the borrower's. Nothing before this phase
// opens a block device.
func (a *Agent) disksReadOnly(ctx context.Context) error {
	marked, err := disks.MarkAllReadOnly(a.log)
	if err != nil {
		return err
	}
	if len(marked) == 0 {
		a.con.printf("ferry: disks read-only: none found")
	} else {
		a.con.printf("ferry: disks read-only: %s", strings.Join(marked, " "))
	}
	a.disksRO = marked
	if a.state != nil && a.state.Disks != nil && len(a.state.Disks) != len(marked) {
		// B's kernel or initrd lacks a disk driver A had (or a disk came or
		// went): the keeper marks what appears later, for the whole lease.
		a.con.printf("ferry: warning: disks: A saw %d (%s), B sees %d (%s): a disk may appear later; the keeper marks it read-only then",
			len(a.state.Disks), strings.Join(a.state.Disks, " "), len(marked), strings.Join(marked, " "))
		a.log.Warn("disk count differs from A's", "a", a.state.Disks, "b", marked)
	}
	// A disk can show up later (a slow controller, a re-read partition
	// table): the watcher marks it too, until kexec or switch_root.
	a.diskWatch = disks.Watch(marked, a.log, func(name string) {
		a.con.printf("ferry: disk read-only (appeared after disks-ro): %s", name)
	})
	return nil
}

// disksMarked is every disk marked read-only so far (never nil).
func (a *Agent) disksMarked() []string {
	out := append([]string{}, a.disksRO...)
	if a.diskWatch != nil {
		out = append(out, a.diskWatch.Late()...)
	}
	return out
}

// keeperDiskArgs hand the disk watch to the keeper, which keeps it for
// the whole lease (the root's udev may load a disk driver B lacked).
func (a *Agent) keeperDiskArgs() []string {
	return []string{"--watch-disks", "--disks-ro", strings.Join(a.disksMarked(), ",")}
}

// stopDiskWatch ends the watcher before the hand-over (kexec, exec of
// the root's init), so no BLKROSET is half done at the jump.
func (a *Agent) stopDiskWatch() {
	if a.diskWatch == nil {
		return
	}
	if late := a.diskWatch.Stop(); len(late) > 0 {
		a.log.Info("disks marked read-only after disks-ro", "devices", late)
	}
	a.diskWatch = nil
}

// loadModules loads the kernel modules this image needs: in A, the
// drivers of the devices present (coldplug, as B does) and aModules, then
// ESP's in their order in the background (modules_a.go); in B, its own
// initrd's for its devices and those that A appended under ModuleDir
// (modules_b.go). A carries more than it loads: the NFS client rides along
// for B when B runs A's release (stage_a.go modulesForB), and loading it
// in A cost seconds for nothing.
func (a *Agent) loadModules(ctx context.Context) error {
	if a.settings != nil {
		return a.loadModulesB(ctx)
	}
	return a.loadModulesA(ctx)
}

// aModules are what A loads besides device drivers and ESP: tun for
// user-space ESP, which nothing else would load (no modprobe answers the
// kernel's request for /dev/net/tun).
var aModules = []string{"tun"}

// uptime is how long the kernel has been running: the boot phase's length.
func uptime() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f, err := strconv.ParseFloat(strings.Fields(string(b) + " 0")[0], 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

package vmlab

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"ferry/power"
)

// TestIPMIPower drives ferry's ipmitool driver against OpenIPMI's ipmi_sim,
// whose chassis control really starts and ends a QEMU guest wired to it
// through QEMU's external BMC interface: power on (after a one-time UEFI
// network boot), cycle and off, each read back from the BMC and checked on
// the guest itself. FERRY_LAB=1 runs it; it starts QEMU, so run it under
// flock /tmp/ferry-qemu.lock.
func TestIPMIPower(t *testing.T) {
	requireLab(t, "ipmi_sim", "ipmitool", "ss")
	sim := StartIPMISim(t, t.TempDir())
	d, err := power.New("ipmitool", map[string]string{"host": "127.0.0.1", "port": strconv.Itoa(sim.LANPort),
		"user": sim.User, "password_file": sim.PassFile, "firmware": "uefi", "cipher": "3"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if st, err := d.Status(ctx); err != nil || st != power.StateOff {
		t.Fatalf("before power on: %v, %v (want off)", st, err)
	}

	t0 := time.Now()
	if err := d.On(ctx); err != nil {
		t.Fatalf("on: %v\n%s", err, tailFile(sim.Log, 1500))
	}
	pid := sim.Guest.Pid()
	if pid == 0 {
		t.Fatal("the BMC says on but no guest runs")
	}
	if st := qmpStatus(ctx, t, sim.Guest); st != power.StatePaused {
		t.Fatalf("guest's QMP says %s, want paused (-S)", st)
	}
	// The one-time network boot reached the BMC, as ipmitool itself reads it back.
	if b, _ := os.ReadFile(sim.BootFile); strings.TrimSpace(string(b)) != "pxe" {
		t.Fatalf("boot device at the BMC %q, want pxe", b)
	}
	out := ipmitool(t, sim, "chassis", "bootparam", "get", "5")
	if !strings.Contains(out, "Force PXE") {
		t.Fatalf("ipmitool chassis bootparam get 5:\n%s", out)
	}
	t.Logf("power on, read back on: %s (guest pid %d)", time.Since(t0).Round(time.Millisecond), pid)

	t1 := time.Now()
	if err := d.Reset(ctx); err != nil {
		t.Fatalf("cycle: %v", err)
	}
	if !waitFor(30*time.Second, func() bool { p := sim.Guest.Pid(); return p != 0 && p != pid }) {
		t.Fatalf("power cycle: guest pid %d, want a new guest after %d ended", sim.Guest.Pid(), pid)
	}
	if st, err := d.Status(ctx); err != nil || st != power.StateOn {
		t.Fatalf("after cycle: %v, %v", st, err)
	}
	t.Logf("power cycle, new guest: %s", time.Since(t1).Round(time.Millisecond))

	t2 := time.Now()
	if err := d.Off(ctx); err != nil {
		t.Fatalf("off: %v", err)
	}
	if p := sim.Guest.Pid(); p != 0 {
		t.Fatalf("the BMC says off but guest %d still runs", p)
	}
	t.Logf("power off, read back off: %s", time.Since(t2).Round(time.Millisecond))
}

// qmpStatus is the guest's state as its own QMP socket says.
func qmpStatus(ctx context.Context, t *testing.T, g BMCGuest) power.State {
	t.Helper()
	q, err := power.New("qmp", map[string]string{"socket": g.QMP()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var st power.State
	waitFor(10*time.Second, func() bool { st, err = q.Status(ctx); return err == nil && st != power.StateOff })
	return st
}

// ipmitool runs ipmitool against the simulator, the password from its file (-f).
func ipmitool(t *testing.T, s *IPMISim, args ...string) string {
	t.Helper()
	out, err := Run(append([]string{"ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", strconv.Itoa(s.LANPort),
		"-U", s.User, "-f", s.PassFile}, args...)...)
	if err != nil {
		t.Fatalf("ipmitool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

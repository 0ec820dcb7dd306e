package agent

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// A Go fatal error in PID 1 panics the kernel, which by default hangs
// for ever: with on_failure=reboot (the default) the agent makes it
// reboot, and gives the root's init the kernel's own value back.
func TestArmPanicRebootFollowsOnFailure(t *testing.T) {
	for _, c := range []struct {
		cmdline, before, armed string
	}{
		{"ferry.lender=http://l", "0\n", "10"},
		{"ferry.on_failure=reboot", "0\n", "10"},
		{"ferry.on_failure=hold", "0\n", "0\n"},
		{"ferry.on_failure=poweroff", "0\n", "0\n"},
		{"panic=30", "30\n", "30\n"}, // the operator's panic= stays
	} {
		p := filepath.Join(t.TempDir(), "panic")
		os.WriteFile(p, []byte(c.before), 0o644)
		a, err := New(io.Discard, slog.New(slog.DiscardHandler), c.cmdline)
		if err != nil {
			t.Fatal(err)
		}
		a.ArmPanicReboot(p)
		if got, _ := os.ReadFile(p); string(got) != c.armed {
			t.Errorf("%q, panic %q: armed %q, want %q", c.cmdline, c.before, got, c.armed)
		}
		a.disarmPanicReboot()
		after := c.before // untouched
		if c.armed == "10" {
			after = "0" // the kernel's value back
		}
		if got, _ := os.ReadFile(p); string(got) != after {
			t.Errorf("%q: after switch-root %q, want %q", c.cmdline, got, after)
		}
	}
	// No /proc/sys/kernel/panic: nothing to restore, no crash.
	a, _ := New(io.Discard, slog.New(slog.DiscardHandler), "")
	a.ArmPanicReboot(filepath.Join(t.TempDir(), "missing"))
	a.disarmPanicReboot()
}

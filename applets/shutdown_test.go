package applets

import (
	"strings"
	"testing"
)

// systemd-shutdown execs /shutdown with its own flags ("--log-level 6"):
// they must reach the applet untouched, never ferry's --log-level parser,
// whose refusal would end PID 1 (a kernel panic at every power-off).
func TestShutdownTakesSystemdShutdownsFlagsAsTheyAre(t *testing.T) {
	code, _, errb := run("/shutdown", "poweroff", "--timeout", "90000000us", "--log-level", "6", "--log-target", "kmsg")
	if code != 1 || !strings.Contains(errb, "not PID 1") {
		t.Fatalf("exit %d, stderr %q: want the applet's own refusal (not PID 1 here)", code, errb)
	}
}

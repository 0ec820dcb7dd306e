package debtest

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The units parse (systemd-analyze verify: no unknown key, no bad value)
// and keep their exposure low (systemd-analyze security --offline): the
// lender and the gateway at most 3.0, the borrower, which must copy
// roots with their owners and devices and run exportfs, at most 6.0.
func TestUnitsVerifyAndAreHardened(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("no systemd-analyze")
	}
	// What verify says on a machine without the package installed.
	benign := regexp.MustCompile(`Command /usr/bin/ferry is not executable|Command 'man ferry\(1\)' failed`)
	score := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)
	for unit, max := range map[string]float64{"ferry-lender.service": 3.0, "ferry-gateway.service": 3.0, "ferry-borrower.service": 6.0} {
		path := filepath.Join("..", "..", "dist", "systemd", unit)
		out, _ := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && !benign.MatchString(line) {
				t.Errorf("systemd-analyze verify %s: %s", unit, line)
			}
		}
		out, err := exec.Command("systemd-analyze", "security", "--offline=yes", path).CombinedOutput()
		m := score.FindSubmatch(out)
		if m == nil {
			t.Errorf("systemd-analyze security %s: %v\n%s", unit, err, out)
			continue
		}
		if v, _ := strconv.ParseFloat(string(m[1]), 64); v > max {
			t.Errorf("%s: exposure %.1f, want at most %.1f", unit, v, max)
		} else {
			t.Logf("%s: exposure %.1f (at most %.1f)", unit, v, max)
		}
	}
}

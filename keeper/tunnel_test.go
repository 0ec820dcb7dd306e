package keeper

import (
	"strings"
	"testing"
)

func TestParseDataPlaneTakesEmptyAsAuto(t *testing.T) {
	for in, want := range map[string]DataPlane{"": DataPlaneAuto, "auto": DataPlaneAuto, "kernel": DataPlaneKernel, "user": DataPlaneUser} {
		if got, err := ParseDataPlane(in); err != nil || got != want {
			t.Errorf("ParseDataPlane(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParseDataPlaneRefusesUnknownChoice(t *testing.T) {
	for _, in := range []string{"xfrm", "Kernel", "user ", "tun"} {
		if _, err := ParseDataPlane(in); err == nil || !strings.Contains(err.Error(), in) {
			t.Errorf("ParseDataPlane(%q) = %v, want an error naming it", in, err)
		}
	}
}

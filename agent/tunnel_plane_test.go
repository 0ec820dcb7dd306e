package agent

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"ferry/keeper"
)

func newTestAgent(t *testing.T, cmdline string) *Agent {
	t.Helper()
	a, err := New(io.Discard, slog.New(slog.DiscardHandler), cmdline)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestADataPlaneDefaultsToAutoAndFollowsCommandLine(t *testing.T) {
	for cmdline, want := range map[string]keeper.DataPlane{
		"console=ttyS0":                               keeper.DataPlaneAuto,
		"ferry.dataplane=user":                        keeper.DataPlaneUser,
		"ferry.dataplane=user ferry.dataplane=kernel": keeper.DataPlaneKernel,
	} {
		if got, err := newTestAgent(t, cmdline).dataPlane(); err != nil || got != want {
			t.Errorf("%q: data plane %q, %v; want %q", cmdline, got, err, want)
		}
	}
}

func TestARefusesUnknownDataPlaneNamingTheParameter(t *testing.T) {
	_, err := newTestAgent(t, "ferry.dataplane=xfrm").dataPlane()
	if err == nil || !strings.Contains(err.Error(), "ferry.dataplane") || !strings.Contains(err.Error(), `"xfrm"`) {
		t.Fatalf("dataPlane() = %v, want an error naming ferry.dataplane and xfrm", err)
	}
}

func TestBFollowsTheDataPlaneACarriedNotItsCommandLine(t *testing.T) {
	var st State
	if err := json.Unmarshal([]byte(`{"trace":"t","dataplane":"user"}`), &st); err != nil {
		t.Fatal(err)
	}
	a := newTestAgent(t, "ferry.dataplane=kernel")
	a.state = &st
	if got, err := a.dataPlane(); err != nil || got != keeper.DataPlaneUser {
		t.Fatalf("B's data plane %q, %v; want user from its state", got, err)
	}
	st.DataPlane = "bogus"
	if _, err := a.dataPlane(); err == nil || !strings.Contains(err.Error(), "dataplane") {
		t.Fatalf("B with dataplane %q in its state: %v, want an error naming the field", st.DataPlane, err)
	}
}

func TestKeeperTunnelUpEventGivesAddressAndPlane(t *testing.T) {
	vip, plane, err := parseTunnelUp("10.52.8.1 kernel")
	if err != nil || vip != "10.52.8.1" || plane != keeper.DataPlaneKernel {
		t.Fatalf("parseTunnelUp = %q, %q, %v; want 10.52.8.1 on kernel", vip, plane, err)
	}
	for _, bad := range []string{"10.52.8.1", "10.52.8.1 auto", "10.52.8.1 xfrm", "", "10.52.8.1 user extra"} {
		if _, _, err := parseTunnelUp(bad); err == nil {
			t.Errorf("parseTunnelUp(%q) accepted", bad)
		}
	}
}

func FuzzParseTunnelUp(f *testing.F) {
	for _, s := range []string{"10.52.8.1 kernel", "10.52.8.1 user", "10.52.8.1", " auto", "a b c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vip, plane, err := parseTunnelUp(s)
		if err != nil {
			return
		}
		if plane != keeper.DataPlaneKernel && plane != keeper.DataPlaneUser {
			t.Fatalf("parseTunnelUp(%q) gave plane %q", s, plane)
		}
		if vip == "" || strings.ContainsAny(vip, " \t\n") {
			t.Fatalf("parseTunnelUp(%q) gave address %q", s, vip)
		}
	})
}

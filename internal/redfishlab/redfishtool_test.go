package redfishlab

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRedfishtoolAgrees runs Debian's redfishtool (DMTF's own client)
// against the service, so the service is not only checked by ferry's
// driver: it must find the system through the collection, log in with a
// session, read PowerState, set a one-time Pxe boot through its own ETag
// handling, and reset with a type it finds allowed.
func TestRedfishtoolAgrees(t *testing.T) {
	if _, err := exec.LookPath("redfishtool"); err != nil {
		if os.Getenv("FERRY_LAB") != "" {
			t.Fatal("missing redfishtool (scripts/ci-deps.sh)")
		}
		t.Skip("redfishtool not installed (scripts/ci-deps.sh installs it)")
	}
	m := &machine{state: "Off"}
	s := New(Config{User: "admin", Password: "pw", Machine: m, RequireIfMatch: true})
	srv := httptest.NewTLSServer(s.Handler())
	defer srv.Close()
	// Credentials from a file (-c), not argv.
	cfg := filepath.Join(t.TempDir(), "redfishtool.json")
	os.WriteFile(cfg, []byte(`{"user":"admin","password":"pw"}`), 0o600)
	host := strings.TrimPrefix(srv.URL, "https://")
	rt := func(args ...string) (string, error) {
		cmd := exec.Command("redfishtool", append([]string{"-c", cfg, "-r", host, "-S", "Always", "-A", "Session", "-T", "10"}, args...)...)
		cmd.Env = append(os.Environ(), "NO_PROXY=*", "no_proxy=*")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := rt("Systems", "-1", "get")
	var sys map[string]any
	if err != nil || json.Unmarshal([]byte(out), &sys) != nil || sys["PowerState"] != "Off" || sys["Id"] != "1" {
		t.Fatalf("redfishtool Systems -1 get: %v\n%s", err, out)
	}
	if out, err := rt("Systems", "-1", "setBootOverride", "Once", "Pxe"); err != nil {
		t.Fatalf("redfishtool setBootOverride Once Pxe: %v\n%s", err, out)
	}
	if im := s.IfMatch(); len(im) != 1 || im[0] != `W/"1"` {
		t.Fatalf("redfishtool's PATCH carried If-Match %q, want the ETag W/\"1\"", im)
	}
	if out, err := rt("Systems", "-1", "reset", "On"); err != nil {
		t.Fatalf("redfishtool reset On: %v\n%s", err, out)
	}
	if got := s.Boots(); len(got) != 1 || got[0].Target != "Pxe" || got[0].Enabled != "Once" || len(m.resets) != 1 || m.resets[0] != "On" {
		t.Fatalf("after redfishtool: boots %+v, resets %v", got, m.resets)
	}
	if out, err := rt("Systems", "-1", "get", "-P", "PowerState"); err != nil || !strings.Contains(out, `"On"`) {
		t.Fatalf("redfishtool get -P PowerState: %v\n%s", err, out)
	}
	if out, err := rt("Systems", "-1", "reset", "Nmi"); err == nil {
		t.Fatalf("redfishtool reset Nmi (not allowed) succeeded:\n%s", out)
	}
	if len(m.resets) != 1 {
		t.Fatalf("a refused reset reached the machine: %v", m.resets)
	}
	if n := s.Sessions(); n != 0 {
		t.Errorf("redfishtool left %d sessions (it deletes its own): requests\n%s", n, strings.Join(s.Requests(), "\n"))
	}
}

package applets

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/api"
	"ferry/lender"
	"ferry/lenderca"
	"ferry/store"
)

// runningLender is a lender manager behind its admin socket in a temp
// dir, as `ferry lender serve` runs it, with the real power drivers.
func runningLender(t *testing.T, ttl time.Duration) (string, *lender.Manager) {
	t.Helper()
	dir, err := os.MkdirTemp("", "fl") // short: unix socket paths are bounded
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ca, err := lenderca.Init(dir, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(lender.StorePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	env := &Env{Log: log}
	m := lender.New(st, ca, log, lender.Options{PublicURL: "https://127.0.0.1:1", TokenTTL: ttl, Power: powerFor(env)})
	ln, err := api.ListenUnix(lender.AdminSocket(dir))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: m.AdminHandler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); st.Close() })
	return dir, m
}

func testLeaseRequest(key string) api.LeaseRequest {
	return api.LeaseRequest{IdempotencyKey: key, Count: 1, Gateway: "10.41.0.1:500", BorrowerCA: "x",
		Image: api.Image{Kernel: api.Artifact{URL: "https://10.41.1.1/k", SHA256: fmt.Sprintf("%064x", 1)},
			Initrd: api.Artifact{URL: "https://10.41.1.1/i", SHA256: fmt.Sprintf("%064x", 2)}},
		Roots: []api.NFSRoot{{Server: "10.41.1.2", Path: "/roots/x"}}, DurationSeconds: 3600}
}

// jsonOut runs argv, wants exit code want, and decodes stdout into v.
func jsonOut(t *testing.T, want int, v any, argv ...string) {
	t.Helper()
	code, out, errb := run(argv...)
	if code != want {
		t.Fatalf("%v: exit %d, want %d; stderr %q stdout %q", argv, code, want, errb, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v: stdout is not JSON: %v\n%s", argv, err, out)
	}
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(25 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestLenderCLIShowsPowerErrorWithItsReason(t *testing.T) {
	dir, m := runningLender(t, 5*time.Minute)
	sock := filepath.Join(dir, "no-qemu.qmp")
	const mac = "52:54:00:aa:00:01"
	var added lender.Server
	jsonOut(t, 0, &added, "ferry", "lender", "server", "add", "--dir", dir, "--mac", mac, "--power", "qmp",
		"--power-opt", "socket="+sock, "-o", "json")
	if added.State != "free" || added.Power != "qmp" {
		t.Fatalf("added %+v", added)
	}
	l, err := m.RequestLease(context.Background(), testLeaseRequest("k"))
	if err != nil {
		t.Fatal(err)
	}
	var ss []lender.Server
	eventually(t, "power-error in server list", func() bool {
		jsonOut(t, 0, &ss, "ferry", "lender", "server", "list", "--dir", dir, "-o", "json")
		return len(ss) == 1 && ss[0].State == "power-error"
	})
	if !strings.Contains(ss[0].LastError, sock) || ss[0].LeaseID != l.ID {
		t.Errorf("server list: %+v, want the lease and the missing socket as last error", ss[0])
	}
	var ld LenderLeaseDetail
	jsonOut(t, 0, &ld, "ferry", "lender", "lease", "show", "--dir", dir, l.ID, "-o", "json")
	if ld.Servers[0].Phase != "power-error" || !strings.Contains(ld.Servers[0].Error, sock) {
		t.Errorf("lease show: %+v", ld.Servers[0])
	}
	var whats []string
	for _, e := range ld.Events {
		whats = append(whats, e.What+" "+e.Error)
	}
	if got := strings.Join(whats, "\n"); !strings.Contains(got, "power on via qmp: failed") || !strings.Contains(got, "booting -> power-error") {
		t.Errorf("lease history lacks the power failure:\n%s", got)
	}
	// The table says the same, and --no-headers drops the header.
	code, out, _ := run("ferry", "lender", "server", "list", "--dir", dir, "--no-headers")
	if code != 0 || strings.Contains(out, "MAC") || !strings.Contains(out, "power-error") || !strings.Contains(out, sock) {
		t.Errorf("server list table: exit %d\n%s", code, out)
	}
	// A power action that fails is exit status 1, its reason printed.
	code, out, _ = run("ferry", "lender", "server", "power", "--dir", dir, mac, "on")
	if code != 1 || !strings.Contains(out, "failed") || !strings.Contains(out, sock) {
		t.Errorf("server power on: exit %d\n%s", code, out)
	}
	// validate asks each BMC: QEMU gone is "off" to the qmp driver (it
	// exits when its guest powers off); a Redfish BMC that refuses the
	// connection is a failure.
	const bmc = "52:54:00:aa:00:09"
	run("ferry", "lender", "server", "add", "--dir", dir, "--mac", bmc, "--power", "redfish", "--power-opt", "endpoint=https://127.0.0.1:1")
	var vr []lender.PowerResult
	jsonOut(t, 1, &vr, "ferry", "lender", "server", "validate", "--dir", dir, "-o", "json")
	if len(vr) != 2 || !vr[0].OK || vr[0].State != "off" || vr[1].OK || !strings.Contains(vr[1].Error, "127.0.0.1:1") {
		t.Errorf("validate: %+v", vr)
	}
	var sd ServerDetail
	jsonOut(t, 0, &sd, "ferry", "lender", "server", "show", "--dir", dir, mac, "-o", "json")
	if sd.State != "power-error" || len(sd.Events) < 4 {
		t.Errorf("server show: %+v", sd)
	}
}

func TestLenderCLIShowsBootTimeout(t *testing.T) {
	dir, m := runningLender(t, time.Second)
	confirm := filepath.Join(dir, "confirm")
	const mac = "52:54:00:aa:00:02"
	if code, _, errb := run("ferry", "lender", "server", "add", "--dir", dir, "--mac", mac, "--power", "manual", "--power-opt", "confirm_file="+confirm); code != 0 {
		t.Fatal(errb)
	}
	l, err := m.RequestLease(context.Background(), testLeaseRequest("k"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the person's confirmation", func() bool { // the manual driver removes a stale one first
		ev, _ := m.ServerEvents(context.Background(), mac)
		if len(ev) >= 3 {
			return true
		}
		os.WriteFile(confirm, nil, 0o600)
		return false
	})
	var ld LenderLeaseDetail
	eventually(t, "boot-timeout in lease show", func() bool {
		jsonOut(t, 0, &ld, "ferry", "lender", "lease", "show", "--dir", dir, l.ID, "-o", "json")
		return ld.Servers[0].Phase == "boot-timeout"
	})
	if !strings.Contains(ld.Servers[0].Error, "no enrollment within the token's life (1s)") {
		t.Errorf("boot-timeout error %q", ld.Servers[0].Error)
	}
	var ev []lender.Event
	jsonOut(t, 0, &ev, "ferry", "lender", "server", "events", "--dir", dir, mac, "-o", "json")
	var got []string
	for _, e := range ev {
		got = append(got, e.Kind+": "+e.What)
	}
	want := []string{"state: added to pool default, power manual", "state: leased to default (pool default): booting",
		"power: power on via manual: ok", "state: booting -> boot-timeout"}
	if len(got) != len(want) {
		t.Fatalf("events:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("event %d: %q, want %q", i, got[i], want[i])
		}
	}
}

func TestLenderCLIMaintenance(t *testing.T) {
	dir, m := runningLender(t, time.Minute)
	const mac = "52:54:00:aa:00:03"
	run("ferry", "lender", "server", "add", "--dir", dir, "--mac", mac, "--power", "manual", "--power-opt", "confirm_file=/nonexistent/c")
	var s lender.Server
	jsonOut(t, 0, &s, "ferry", "lender", "server", "maintenance", "--dir", dir, mac, "on", "--note", "new DIMMs", "-o", "json")
	if s.State != "maintenance" || s.Note != "new DIMMs" {
		t.Fatalf("%+v", s)
	}
	if _, err := m.RequestLease(context.Background(), testLeaseRequest("k")); err == nil {
		t.Fatal("a server in maintenance was leased")
	}
	code, out, _ := run("ferry", "lender", "server", "list", "--dir", dir)
	if code != 0 || !strings.Contains(out, "maintenance: new DIMMs") {
		t.Errorf("list: %s", out)
	}
	if code, _, errb := run("ferry", "lender", "server", "maintenance", "--dir", dir, mac, "sideways"); code != 2 {
		t.Errorf("bad word: exit %d %s", code, errb)
	}
}

func TestManualDriverNamesTheServer(t *testing.T) {
	var logs bytes.Buffer
	env := &Env{Log: slog.New(slog.NewTextHandler(&logs, nil))}
	d, err := powerFor(env)(lender.Server{ID: "s525400aa0004", MAC: "52:54:00:aa:00:04", Power: "manual",
		PowerOpts: map[string]string{"confirm_file": filepath.Join(t.TempDir(), "c")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	d.On(ctx)
	if !strings.Contains(logs.String(), "server s525400aa0004 (52:54:00:aa:00:04)") {
		t.Errorf("manual instructions do not name the server:\n%s", logs.String())
	}
}

func TestEmptyListsAreEmptyJSONArrays(t *testing.T) {
	dir, _ := runningLender(t, time.Minute)
	for _, argv := range [][]string{
		{"ferry", "lender", "server", "list", "--dir", dir, "-o", "json"},
		{"ferry", "lender", "lease", "list", "--dir", dir, "-o", "json"},
		{"ferry", "lender", "server", "validate", "--dir", dir, "-o", "json"},
	} {
		code, out, errb := run(argv...)
		if code != 0 || strings.TrimSpace(out) != "[]" {
			t.Errorf("%v: exit %d, %q %q; want []", argv[2:4], code, out, errb)
		}
	}
	code, out, _ := run("ferry", "lender", "server", "list", "--dir", dir)
	if code != 0 || !strings.HasPrefix(out, "MAC ") {
		t.Errorf("empty table: exit %d %q, want the header alone", code, out)
	}
	if code, _, errb := run("ferry", "lender", "server", "list", "--dir", dir, "-o", "yaml"); code != 2 || !strings.Contains(errb, "want table, wide or json") {
		t.Errorf("-o yaml: exit %d %q", code, errb)
	}
}

package borrower_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/api"
	"ferry/borrower"
)

// ferryCode runs one CLI command and returns its exit status and output.
func (l *lab) ferryCode(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(context.Background(), l.bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String(), errb.String()
	}
	if err != nil {
		return -1, out.String(), err.Error()
	}
	return 0, out.String(), errb.String()
}

func decodeLease(t *testing.T, out string) borrower.LeaseView {
	t.Helper()
	var v borrower.LeaseView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not a lease in JSON: %v\n%s", err, out)
	}
	return v
}

// TestLeaseCLIForScripts drives the borrower's CLI as a script would:
// JSON out, exit statuses, --wait's phase lines, and the exit status of a
// refused request and of its retry.
func TestLeaseCLIForScripts(t *testing.T) {
	l := newLab(t, buildFerry(t))

	// Refused (3 servers, 5 asked): exit 1, and a retry with the same key
	// is the same refusal, not a success (it was exit 0).
	for range 2 {
		code, out, errb := l.ferryCode("borrower", "lease", "request", "--dir", l.bdir, "--count", "5", "--image", "b1", "--key", "too-many-01", "-o", "json")
		if code != 1 || !strings.Contains(errb, "pool") || out != "" {
			t.Fatalf("refused request: exit %d, stdout %q, stderr %q", code, out, errb)
		}
	}
	var ls []borrower.Lease
	if err := json.Unmarshal([]byte(l.must(t, "borrower", "lease", "list", "--dir", l.bdir, "-o", "json")), &ls); err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].State != borrower.StateFailed || !strings.Contains(ls[0].Error, "free") {
		t.Fatalf("lease list: %+v, want the one refused request, failed, with its reason", ls)
	}

	// --wait prints each phase as the lender sees it and ends when every
	// server has its root.
	type result struct {
		code      int
		out, errb string
	}
	done := make(chan result, 1)
	go func() {
		c, o, e := l.ferryCode("borrower", "lease", "request", "--dir", l.bdir, "--count", "1", "--image", "b1",
			"--pool", "default", "--duration", "2h", "--key", "waited-0001", "--wait=60s", "-o", "json")
		done <- result{c, o, e}
	}()
	var lenderLeases []api.Lease
	waitFor(t, "the lender's lease", func() error {
		err := api.UnixClient(filepath.Join(l.ldir, "admin.sock")).Call(t.Context(), "GET", "/admin/leases", nil, &lenderLeases)
		if err == nil && len(lenderLeases) != 1 {
			err = errors.New("no lease yet")
		}
		return err
	})
	s := lenderLeases[0].Servers[0]
	a := &agent{mac: s.MAC, boot: l.bootParams(t, s.MAC)}
	if code, body := a.enroll(t); code != 200 {
		t.Fatalf("enroll: %d %s", code, body)
	}
	for _, ph := range []string{"enroll", "tunnel-a", "fetch-b", "kexec", "tunnel-b", "mount-root", "switch-root"} {
		start := time.Now().Add(-time.Second)
		p := api.PhaseReport{LeaseID: a.resp.LeaseID, ServerID: a.resp.ServerID, Phase: ph, Start: start, End: start.Add(250 * time.Millisecond)}
		if code, body := a.post(t, l.agentURL+api.PathPhase, &a.cert, p, nil); code != 204 {
			t.Fatalf("phase %s: %d %s", ph, code, body)
		}
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("lease request --wait did not end after switch-root")
	}
	if r.code != 0 {
		t.Fatalf("lease request --wait: exit %d\n%s\n%s", r.code, r.out, r.errb)
	}
	v := decodeLease(t, r.out)
	if v.State != borrower.StateActive || v.Pool != "default" || v.DurationSeconds != 7200 || v.Lender.Servers[0].Phase != "switch-root" {
		t.Errorf("lease: state %s pool %q duration %d phase %s", v.State, v.Pool, v.DurationSeconds, v.Lender.Servers[0].Phase)
	}
	if d := v.Lender.Expires.Sub(v.Lender.Created); d != 2*time.Hour {
		t.Errorf("lender lease lasts %s, want the 2h asked", d)
	}
	for _, want := range []string{"lease " + v.ID + " active", "phase enroll ok in 250ms", "phase switch-root ok"} {
		if !strings.Contains(r.errb, want) {
			t.Errorf("--wait lines lack %q:\n%s", want, r.errb)
		}
	}

	// return --wait: until the lender has powered the server off.
	code, out, errb := l.ferryCode("borrower", "lease", "return", "--dir", l.bdir, v.ID, "--wait=60s")
	if code != 0 || !strings.Contains(out, "returned") || !strings.Contains(out, s.ID+" "+s.MAC+" returned") {
		t.Fatalf("lease return --wait: exit %d\n%s\n%s", code, out, errb)
	}

	// The lender down: the request is recorded and retried: exit 3.
	l.lenderP.kill()
	code, out, errb = l.ferryCode("borrower", "lease", "request", "--dir", l.bdir, "--count", "1", "--image", "b1", "--key", "later-00001", "-o", "json")
	if code != 3 || !strings.Contains(errb, "retrying") {
		t.Fatalf("request with the lender down: exit %d, stdout %q, stderr %q", code, out, errb)
	}
	if v := decodeLease(t, out); v.State != borrower.StateRequesting || v.Error == "" {
		t.Errorf("accepted lease: state %s error %q", v.State, v.Error)
	}
	// Usage errors are 2.
	if code, _, _ := l.ferryCode("borrower", "lease", "request", "--dir", l.bdir, "--wait=soon"); code != 2 {
		t.Errorf("--wait=soon: exit %d, want 2", code)
	}
}

// TestLeaseShowsPowerErrorToTheBorrower: a server whose power driver
// fails is power-error with the driver's reason on the borrower's side
// too, and lease request --wait fails (exit 1) with that reason.
func TestLeaseShowsPowerErrorToTheBorrower(t *testing.T) {
	l := newLab(t, buildFerry(t))
	for _, mac := range l.macs {
		l.must(t, "lender", "server", "remove", "--dir", l.ldir, mac)
	}
	missing := filepath.Join(l.dir, "no-qemu.qmp") // the lender's detail
	l.must(t, "lender", "server", "add", "--dir", l.ldir, "--mac", "52:54:00:41:01:01", "--power", "qmp", "--power-opt", "socket="+missing)
	code, out, errb := l.ferryCode("borrower", "lease", "request", "--dir", l.bdir, "--count", "1", "--image", "b1", "--wait=60s")
	if code != 1 || !strings.Contains(errb, "power-error: the lender could not switch the server's power") {
		t.Fatalf("request --wait with a failing power driver: exit %d\nstdout %s\nstderr %s", code, out, errb)
	}
	if !strings.Contains(out, "booting") || !strings.Contains(out, "power-error: ") {
		t.Errorf("--wait lines lack booting and power-error:\n%s", out)
	}
	var ls []borrower.Lease
	json.Unmarshal([]byte(l.must(t, "borrower", "lease", "list", "--dir", l.bdir, "-o", "json")), &ls)
	v := decodeLease(t, l.must(t, "borrower", "lease", "show", "--dir", l.bdir, ls[0].ID, "-o", "json"))
	if s := v.Lender.Servers[0]; s.Phase != "power-error" || !strings.Contains(s.Error, "the lender's operator has the reason") {
		t.Errorf("borrower lease show: %+v", s)
	}
	// The driver's reason names the lender's BMC (here a socket): the
	// borrower never reads it, the lender's operator does.
	if body := l.must(t, "borrower", "lease", "show", "--dir", l.bdir, ls[0].ID, "-o", "json"); strings.Contains(body, missing) {
		t.Errorf("the borrower reads the lender's power driver detail %s:\n%s", missing, body)
	}
	var ld struct {
		Servers []api.LeaseServer `json:"servers"`
	}
	if err := json.Unmarshal([]byte(l.must(t, "lender", "lease", "show", "--dir", l.ldir, v.Lender.ID, "-o", "json")), &ld); err != nil ||
		!strings.Contains(ld.Servers[0].Error, missing) {
		t.Errorf("the lender's operator does not read the reason: %+v %v", ld, err)
	}
	var hist []string
	for _, e := range v.Events {
		hist = append(hist, e.Kind+": "+e.What+" "+e.Error)
	}
	if h := strings.Join(hist, "\n"); !strings.Contains(h, "power: power on via qmp: failed") ||
		!strings.Contains(h, "booting -> power-error") {
		t.Errorf("the lender's history, as the borrower shows it:\n%s", h)
	}
	if out := l.must(t, "borrower", "lease", "show", "--dir", l.bdir, ls[0].ID); !strings.Contains(out, "history at the lender") {
		t.Errorf("lease show without the lender's history:\n%s", out)
	}
}

package vmlab

import (
	"context"
	"encoding/pem"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ferry/internal/redfishlab"
	"ferry/power"
)

// TestRedfishPower drives ferry's Redfish driver against redfishlab (over
// TLS, with sessions and ETags) switching a real QEMU guest over QMP: the
// one-time UEFI network boot reaches the service before the power-on, and
// on, off and restart show on the guest's own QMP status. FERRY_LAB=1
// runs it; it starts QEMU, so run it under flock /tmp/ferry-qemu.lock.
func TestRedfishPower(t *testing.T) {
	requireLab(t)
	dir := t.TempDir()
	g := BMCGuest{Dir: dir}
	qemu := Start(t, "qemu redfish guest", filepath.Join(dir, "qemu.log"), g.Argv()...)
	if !waitFor(10*time.Second, func() bool { _, err := os.Stat(g.QMP()); return err == nil || !qemu.Running() }) || !qemu.Running() {
		t.Fatalf("QEMU made no QMP socket: %s", tailFile(qemu.Log, 1000))
	}
	vm := &VM{Proc: qemu, QMP: g.QMP(), log: slog.Default()}
	svc := redfishlab.New(redfishlab.Config{User: "ferry", Password: "lab-redfish-pw", Machine: QMPMachine{Socket: vm.QMP},
		RequireIfMatch: true})
	srv := httptest.NewTLSServer(svc.Handler())
	defer srv.Close()
	ca := filepath.Join(dir, "bmc-ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	pw := filepath.Join(dir, "bmc-password")
	os.WriteFile(pw, []byte("lab-redfish-pw\n"), 0o600)
	d, err := power.New("redfish", map[string]string{"endpoint": srv.URL, "user": "ferry", "password_file": pw,
		"ca_file": ca, "firmware": "uefi"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	guest := func() power.State {
		st, err := vm.Status(ctx)
		if err != nil {
			t.Fatalf("guest QMP: %v", err)
		}
		return st
	}
	if st, err := d.Status(ctx); err != nil || st != power.StateOff || guest() != power.StatePaused {
		t.Fatalf("before power on: driver %v, %v; guest %s", st, err, guest())
	}
	for _, step := range []struct {
		name  string
		op    func(context.Context) error
		guest power.State
	}{{"on", d.On, power.StateOn}, {"off", d.Off, power.StatePaused}, {"reset", d.Reset, power.StateOn}, {"off again", d.Off, power.StatePaused}} {
		t0 := time.Now()
		if err := step.op(ctx); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if g := guest(); g != step.guest {
			t.Fatalf("%s: guest is %s, want %s", step.name, g, step.guest)
		}
		if !qemu.Running() {
			t.Fatalf("%s: QEMU ended", step.name)
		}
		t.Logf("%s: %s", step.name, time.Since(t0).Round(time.Millisecond))
	}
	want := redfishlab.Boot{Target: "Pxe", Enabled: "Once", Mode: "UEFI"}
	if b := svc.Boots(); len(b) < 1 || b[0] != want {
		t.Fatalf("the power-on booted with %+v, want %+v first", b, want)
	}
	if n := svc.Sessions(); n != 0 {
		t.Fatalf("%d sessions left open", n)
	}
}

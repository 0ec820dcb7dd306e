package lender

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/power"
	"ferry/store"
)

// qmpMissing is the real QMP driver pointed at a socket nobody serves:
// every power on fails as it would with QEMU gone.
func qmpMissing(t *testing.T) PowerFunc {
	sock := filepath.Join(t.TempDir(), "absent.qmp")
	return func(s Server) (PowerDriver, error) {
		return power.New("qmp", map[string]string{"socket": sock}, nil)
	}
}

// waitPhase polls member 0 of lease id until it is in phase.
func waitPhase(t *testing.T, m *Manager, id, phase string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		l, err := m.Lease(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if l.Servers[0].Phase == phase {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	l, _ := m.Lease(context.Background(), id)
	t.Fatalf("lease %s server phase %q, want %q", id, l.Servers[0].Phase, phase)
}

func TestPowerFailureShowsPowerErrorWithReason(t *testing.T) {
	f := newFixture(t, 1)
	f.m.power = qmpMissing(t)
	ctx := context.Background()
	l, err := f.m.RequestLease(ctx, leaseReq("k1", 1))
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, f.m, l.ID, PhasePowerError)
	got, _ := f.m.Lease(ctx, l.ID)
	if e := got.Servers[0].Error; !strings.Contains(e, "absent.qmp") {
		t.Errorf("lease server error %q does not name the socket", e)
	}
	ss, err := f.m.Servers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ss[0].State != PhasePowerError || !strings.Contains(ss[0].LastError, "power on") || ss[0].LastErrorAt.IsZero() {
		t.Errorf("server list shows %+v, want state power-error and the power on failure", ss[0])
	}
	ev, err := f.m.ServerEvents(ctx, macOf(0))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, e.Kind+":"+e.What)
	}
	all := strings.Join(kinds, "\n")
	for _, want := range []string{"state:added to pool p", "state:leased to default", "power:power on via manual: failed", "state:booting -> power-error"} {
		if !strings.Contains(all, want) {
			t.Errorf("server events lack %q:\n%s", want, all)
		}
	}
	lev, _ := f.m.LeaseEvents(ctx, l.ID)
	if len(lev) < 3 {
		t.Errorf("lease events %+v, want the lease, power and state entries", lev)
	}
}

func TestBootTimeoutWithdrawsTheBoot(t *testing.T) {
	f := newFixture(t, 1)
	f.m.tokenTTL.Store(int64(150 * time.Millisecond))
	ctx := context.Background()
	l, err := f.m.RequestLease(ctx, leaseReq("k1", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.m.BootFor(macOf(0)); !ok {
		t.Fatal("no boot pending right after the lease")
	}
	waitPhase(t, f.m, l.ID, PhaseBootTimeout)
	if _, ok := f.m.BootFor(macOf(0)); ok {
		t.Error("a timed-out boot is still offered to netboot")
	}
	got, _ := f.m.Lease(ctx, l.ID)
	if !strings.Contains(got.Servers[0].Error, "no enrollment within the token's life") {
		t.Errorf("error %q", got.Servers[0].Error)
	}
	s, _ := f.m.Server(ctx, macOf(0))
	if s.State != PhaseBootTimeout || s.LastError == "" {
		t.Errorf("server %+v, want boot-timeout with its error", s)
	}
	// The operator's clear starts a new boot.
	if _, err := f.m.ClearServer(ctx, macOf(0)); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.m.Server(ctx, macOf(0)); s.State != ServerLeased || s.Phase != PhaseBooting {
		t.Errorf("after clear: %+v, want leased, booting", s)
	}
}

func TestMaintenanceServerIsNeverLeased(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	if _, err := f.m.SetMaintenance(ctx, macOf(0), true, "fan replaced"); err != nil {
		t.Fatal(err)
	}
	_, err := f.m.RequestLease(ctx, leaseReq("k1", 1))
	if err == nil || !strings.Contains(err.Error(), "has 0 free") {
		t.Fatalf("lease of a pool in maintenance: %v, want refused", err)
	}
	if _, err := f.m.SetMaintenance(ctx, macOf(0), false, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.RequestLease(ctx, leaseReq("k2", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.SetMaintenance(ctx, macOf(0), true, ""); err == nil || !strings.Contains(err.Error(), "return it first") {
		t.Errorf("maintenance of a lent server: %v, want refused", err)
	}
}

func TestEventHistoryIsBounded(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "e.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Unix(1000, 0)
	for i := range maxEvents + 50 {
		err := st.Update(context.Background(), func(tx store.Tx) error {
			return recordEvent(tx, Event{At: at, Kind: EventPower, MAC: "m", What: strings.Repeat("x", i%3) + string(rune('a'+i%26))})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	m := &Manager{st: st, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ev, err := m.ServerEvents(context.Background(), "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != maxEvents {
		t.Fatalf("%d events kept, want %d", len(ev), maxEvents)
	}
	// Same timestamp every time: the order is still insertion order, and
	// the oldest 50 are the ones gone.
	if want := string(rune('a' + 50%26)); !strings.HasSuffix(ev[0].What, want) {
		t.Errorf("oldest kept %q, want entry 50", ev[0].What)
	}
}

func TestRestartTriesAPowerErrorAgain(t *testing.T) {
	f := newFixture(t, 1)
	f.m.power = qmpMissing(t)
	ctx := context.Background()
	l, err := f.m.RequestLease(ctx, leaseReq("k1", 1))
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, f.m, l.ID, PhasePowerError)
	// A new manager on the same store, its driver fixed (none wired: the
	// operator powers by hand), as after a restart.
	m2 := New(f.st, f.m.ca, f.m.log, Options{PublicURL: f.m.url, TokenTTL: time.Minute})
	if err := m2.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := m2.Lease(ctx, l.ID)
	if s := got.Servers[0]; s.Phase != PhaseBooting || s.Error != "" {
		t.Fatalf("after restart: %+v, want booting again", s)
	}
	b, ok := m2.BootFor(macOf(0))
	if !ok || b.Token == "" {
		t.Fatal("no fresh boot token after restart")
	}
}

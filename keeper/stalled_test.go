package keeper

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func conn(remote string, state, backoff, retrans uint8) tcpConn {
	return tcpConn{Local: netip.MustParseAddrPort("10.52.8.7:811"), Remote: netip.MustParseAddrPort(remote),
		State: state, Backoff: backoff, Retransmits: retrans}
}

func TestBackingOffPicksOnlyStalledConnectionsThroughTheTunnel(t *testing.T) {
	remote := []netip.Prefix{netip.MustParsePrefix("10.52.0.0/24")}
	nfs := conn("10.52.0.1:2049", tcpEstablished, 6, 6)
	conns := []tcpConn{
		nfs,
		conn("10.52.0.1:2050", tcpEstablished, 0, 0), // moving: leave it
		conn("10.52.0.1:2051", tcpEstablished, 0, 1), // a retransmission unanswered
		conn("10.50.0.1:8443", tcpEstablished, 5, 5), // the lender, not through the tunnel
		conn("10.52.0.1:2052", 2 /* SYN_SENT */, 3, 3),
		conn("10.52.0.1:2053", 8 /* CLOSE_WAIT */, 3, 3),
	}
	got := backingOff(conns, remote)
	if len(got) != 2 || got[0] != nfs || got[1] != conns[2] {
		t.Fatalf("backingOff = %+v, want the NFS connection and the one with an unanswered retransmission", got)
	}
	if got := backingOff(conns, nil); len(got) != 0 {
		t.Errorf("no selectors (no SA): reset %+v", got)
	}
}

func TestRecoveryFiresOnceWhenTheTunnelComesBack(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	up := TunnelStatus{Up: true, Established: true, DataPath: "alive", LastHeard: "2026-12-06T03:00:00Z"}
	stalled := TunnelStatus{Established: true, DataPath: "stalled", LastHeard: "2026-12-06T03:00:00Z"}
	none := TunnelStatus{DataPath: "none"}
	heard := func(s string) TunnelStatus { st := stalled; st.LastHeard = s; return st }
	steps := []struct {
		name string
		s    TunnelStatus
		at   float64
		want bool
	}{
		{"first connection", up, 0, false},
		{"still up", up, 0.5, false},
		{"ESP unanswered", stalled, 2.2, false},
		{"outage", stalled, 10, false},
		{"IKE SA given up", none, 16, false},
		{"reconnected", up, 31, true},
		{"up after that", up, 31.5, false},
		{"stalled again", stalled, 40.3, false},
		{"the gateway answers IKE, nothing sent yet", heard("2026-12-06T03:00:45Z"), 45.5, true},
		{"still stalled", heard("2026-12-06T03:00:46Z"), 46, false},
		{"ESP flows", up, 47, false},
		{"short stall", stalled, 50, false},
		{"ESP answered", up, 50.5, true},
	}
	var r recovery
	for _, s := range steps {
		if got := r.back(s.s, at(s.at)); got != s.want {
			t.Errorf("%s (t=%.1f): back = %v, want %v", s.name, s.at, got, s.want)
		}
	}
}

func TestRecoveryIgnoresWhatItHeardBeforeTheStall(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 10, 300e6, time.UTC)
	var r recovery
	st := TunnelStatus{Established: true, DataPath: "stalled", LastHeard: "2026-12-06T03:00:10Z"}
	for i := range 4 {
		if r.back(st, t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("look %d: recovery on an IKE message heard before the stall", i)
		}
	}
}

func TestUnstallerResetsAndLogsEachConnection(t *testing.T) {
	var logs bytes.Buffer
	var destroyed []tcpConn
	nfs := conn("10.52.0.1:2049", tcpEstablished, 7, 7)
	u := &unstaller{
		list:    func() ([]tcpConn, error) { return []tcpConn{nfs, conn("10.52.0.1:80", tcpEstablished, 0, 0)}, nil },
		destroy: func(c tcpConn) error { destroyed = append(destroyed, c); return nil },
		log:     slog.New(slog.NewTextHandler(&logs, nil)),
	}
	if n := u.reset([]netip.Prefix{netip.MustParsePrefix("10.52.0.0/24")}, "test"); n != 1 || len(destroyed) != 1 || destroyed[0] != nfs {
		t.Fatalf("reset = %d, destroyed %+v; want the NFS connection", n, destroyed)
	}
	for _, want := range []string{"local=10.52.8.7:811", "remote=10.52.0.1:2049", "backoff=7"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestUnstallerWithoutSockDiagWarnsOnce(t *testing.T) {
	var logs bytes.Buffer
	u := &unstaller{
		list:    func() ([]tcpConn, error) { return nil, errors.New("netlink receive: no such file or directory") },
		destroy: func(tcpConn) error { t.Fatal("destroy without a list"); return nil },
		log:     slog.New(slog.NewTextHandler(&logs, nil)),
	}
	for range 3 {
		if n := u.reset([]netip.Prefix{netip.MustParsePrefix("10.52.0.0/24")}, "test"); n != 0 {
			t.Fatalf("reset = %d without sock_diag", n)
		}
	}
	if c := strings.Count(logs.String(), "sock_diag unusable"); c != 1 {
		t.Errorf("%d warnings, want 1:\n%s", c, logs.String())
	}
}

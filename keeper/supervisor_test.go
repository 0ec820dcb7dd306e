package keeper

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/internal/syncbuf"
	"ferry/ipsec/ike"
)

// The supervisor's children here are this test binary again, as the
// keeper's are ferry again: TestMain runs the child named by
// FERRY_KEEPER_TEST_CHILD instead of the tests.
const childEnv = "FERRY_KEEPER_TEST_CHILD"

func TestMain(m *testing.M) {
	if kind := os.Getenv(childEnv); kind != "" {
		os.Exit(testChild(kind))
	}
	os.Exit(m.Run())
}

// testChild is one keeper child: it reads its hand-over, prints what it
// got on stdout, and ends as kind says, by how often it was restarted.
func testChild(kind string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	p, h, err := OpenParent(OpenLinkFD(), log)
	if err != nil {
		fmt.Println("child: ", err)
		return 1
	}
	serial := "-"
	if h.Tunnel != nil {
		st, err := h.Tunnel.InitiatorState()
		if err != nil {
			fmt.Println("child: ", err)
			return 1
		}
		serial = st.Certs[0].SerialNumber.Text(16)
	}
	root := "-"
	if h.Root {
		var st syscall.Stat_t
		if err := syscall.Fstat(RootFD, &st); err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			root = "dir"
		}
	}
	fmt.Printf("child restarts=%d reason=%q chrooted=%q root=%s control=%v disks_ro=%v disks_late=%v cert=%s\n",
		h.Restarts, h.LastRestartReason, h.Chrooted, root, h.Control, h.DisksReadOnly, h.DisksLate, serial)
	switch kind {
	case "handover": // the first reports and crashes, the second ends cleanly
		if h.Restarts > 0 {
			return 0
		}
		ctl := os.NewFile(ControlFD, "control")
		fmt.Fprintln(ctl, "tunnel up 10.9.0.2 kernel")
		st, _ := h.Tunnel.InitiatorState()
		renewed := testCert(st.Key.(*ecdsa.PrivateKey), 77)
		p.Renewed([]*x509.Certificate{renewed})
		p.DiskMarked("sdz")
		if err := p.Chroot("/sysroot"); err != nil {
			fmt.Println("child: ", err)
			return 1
		}
		fmt.Println("child: moved")
		panic("keeper test crash")
	case "clean":
		return 0
	case "loop": // four quick crashes, a long-lived one, then clean
		switch {
		case h.Restarts < 4:
			return 3
		case h.Restarts == 4:
			time.Sleep(300 * time.Millisecond)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		return 0
	case "term": // waits for SIGTERM, and then fails: still no restart
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("child: waiting")
		<-c
		fmt.Println("child: got SIGTERM")
		return 1
	}
	return 1
}

// linesOf are the lines of what the children wrote that start with
// prefix.
func linesOf(s *syncbuf.Buffer, prefix string) []string {
	var out []string
	for _, l := range strings.Split(s.String(), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func testSupervisor(t *testing.T, kind string, out *syncbuf.Buffer) *Supervisor {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &Supervisor{Exe: exe, Args: []string{"@ferry"}, Env: append(os.Environ(), childEnv+"="+kind),
		Stdout: out, Stderr: &bytes.Buffer{}, Log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Backoff: RestartDelay{Min: 20 * time.Millisecond, Max: 50 * time.Millisecond, Stable: 200 * time.Millisecond}}
}

func testCert(key *ecdsa.PrivateKey, serial int64) *x509.Certificate {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "LEASE/SERVER"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return c
}

// A child that crashes after its reports is restarted where it was: the
// renewed certificate, the disk it marked, inside the root (the
// supervisor moved there before the child's answer could reach PID 1),
// without PID 1's control channel any more, and told why.
func TestSupervisorRestartsACrashedChildWhereItWas(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st := &ike.InitiatorState{Gateway: netip.MustParseAddr("192.0.2.1"), VirtualIP: true, Key: key,
		Certs: []*x509.Certificate{testCert(key, 1)}, CAs: []*x509.Certificate{testCert(key, 2)}}
	ht, err := NewHandoverTunnel(st)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	pid1, keeperEnd := os.NewFile(uintptr(fds[0]), "pid1"), os.NewFile(uintptr(fds[1]), "keeper")
	defer pid1.Close()
	out := &syncbuf.Buffer{}
	s := testSupervisor(t, "handover", out)
	s.Control = keeperEnd
	var moved []string
	s.OpenRoot = func(dir string) (*os.File, error) { moved = append(moved, dir); return os.Open(t.TempDir()) }
	bases := 0
	s.Base = func() error { bases++; return nil }
	if err := s.Run(context.Background(), Handover{Tunnel: ht, DisksReadOnly: []string{"vda"}}); err != nil {
		t.Fatal(err)
	}
	got := linesOf(out, "child")
	want := []string{
		`child restarts=0 reason="" chrooted="" root=- control=true disks_ro=[vda] disks_late=[] cert=1`,
		`child: moved`,
		`child restarts=1 reason="exit status 2: panic: keeper test crash" chrooted="/sysroot" root=dir control=false disks_ro=[vda] disks_late=[sdz] cert=4d`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("children said\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Equal(moved, []string{"/sysroot"}) || bases != 1 {
		t.Errorf("supervisor opened the roots %q and prepared its own for %d restarts, want /sysroot once and 1", moved, bases)
	}
	line, err := bufio.NewReader(pid1).ReadString('\n')
	if err != nil || line != "tunnel up 10.9.0.2 kernel\n" {
		t.Errorf("PID 1 read %q (%v) from the first child, want its tunnel event", line, err)
	}
	if h := s.Handover(); h.Restarts != 1 || h.LastRestart.IsZero() {
		t.Errorf("hand-over after the run: %+v", h)
	}
}

// A child that exits with status 0 ends the supervisor: no restart.
func TestSupervisorEndsWithACleanChild(t *testing.T) {
	out := &syncbuf.Buffer{}
	s := testSupervisor(t, "clean", out)
	if err := s.Run(context.Background(), Handover{}); err != nil {
		t.Fatal(err)
	}
	if got := linesOf(out, "child"); len(got) != 1 || s.Handover().Restarts != 0 {
		t.Fatalf("children: %q, restarts %d; want one child, no restart", got, s.Handover().Restarts)
	}
}

// A child that keeps crashing is restarted after 1, 2, 4... times the
// shortest delay up to the longest; one that lived long enough starts
// the sequence again. Killed by a signal is a crash too.
func TestSupervisorBacksOffACrashLoop(t *testing.T) {
	out := &syncbuf.Buffer{}
	s := testSupervisor(t, "loop", out)
	var delays []time.Duration
	var reasons []string
	s.restarted = func(reason string, d time.Duration) {
		delays, reasons = append(delays, d), append(reasons, reason)
	}
	if err := s.Run(context.Background(), Handover{}); err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	if want := []time.Duration{20 * ms, 40 * ms, 50 * ms, 50 * ms, 20 * ms}; !slices.Equal(delays, want) {
		t.Errorf("restart delays %v, want %v", delays, want)
	}
	if want := []string{"exit status 3", "exit status 3", "exit status 3", "exit status 3", "killed by SIGKILL"}; !slices.Equal(reasons, want) {
		t.Errorf("reasons %q, want %q", reasons, want)
	}
	if n := len(linesOf(out, "child restarts=")); n != 6 {
		t.Errorf("%d children started, want 6", n)
	}
}

// When the system stops (the supervisor's context: SIGTERM), the child
// gets SIGTERM and is not restarted, however it ends.
func TestSupervisorPassesSIGTERMOnAndStops(t *testing.T) {
	out := &syncbuf.Buffer{}
	s := testSupervisor(t, "term", out)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, Handover{}) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(linesOf(out, "child: waiting")) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("supervisor still running 10 s after its context ended")
	}
	if got := linesOf(out, "child"); len(got) != 3 || got[2] != "child: got SIGTERM" || s.Handover().Restarts != 0 {
		t.Fatalf("children said %q, restarts %d; want one child that got SIGTERM, no restart", got, s.Handover().Restarts)
	}
}

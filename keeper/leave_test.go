package keeper

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ferry/internal/syncbuf"
)

const (
	miNFSRootRW = "22 1 0:21 / / rw,relatime shared:1 - rootfs rootfs rw\n" +
		"40 22 0:33 / / rw,relatime shared:2 - nfs4 10.9.0.1:/roots/s1 rw,vers=4.1,hard\n" +
		"41 40 0:5 / /dev rw - devtmpfs udev rw\n"
	miNFSRootRO = "22 1 0:21 / / rw,relatime shared:1 - rootfs rootfs rw\n" +
		"40 22 0:33 / / ro,relatime shared:2 - nfs4 10.9.0.1:/roots/s1 ro,vers=4.1,hard\n" +
		"41 40 0:5 / /dev rw - devtmpfs udev rw\n"
	// A read-only bind of a writable file system: nothing was synced.
	miNFSRootBindRO = "40 22 0:33 / / ro,relatime - nfs4 10.9.0.1:/roots/s1 rw,vers=4.1\n"
	miHomeStillRW   = "40 22 0:33 / / ro - nfs4 10.9.0.1:/roots/s1 ro,vers=4.1\n" +
		"42 40 0:34 / /home rw - nfs 10.9.0.1:/home rw,vers=3\n"
	miLocalOnly = "40 22 8:1 / / rw - ext4 /dev/sda1 rw\n"
)

func mounts(t *testing.T, mi string) []Mount {
	t.Helper()
	m, err := Mounts(strings.NewReader(mi))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNetworkFSReleasedOnlyWhenEveryNFSSuperblockIsReadOnly(t *testing.T) {
	for _, c := range []struct {
		name, mi string
		want     bool
		why      string
	}{
		{"nfs root writable", miNFSRootRW, false, "/ (nfs4 10.9.0.1:/roots/s1) is still writable"},
		{"nfs root remounted ro", miNFSRootRO, true, "1 network file system(s) read-only"},
		{"ro bind only", miNFSRootBindRO, false, "still writable"},
		{"another nfs mount writable", miHomeStillRW, false, "/home (nfs 10.9.0.1:/home) is still writable"},
		{"no network fs", miLocalOnly, true, "no network file system"},
	} {
		got, why := NetworkFSReleased(mounts(t, c.mi))
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("%s: released=%v (%s), want %v (%s)", c.name, got, why, c.want, c.why)
		}
	}
}

// fakeProc makes PROC/1 with an exe link to exe (or, when exe is "", only
// a comm file holding comm).
func fakeProc(t *testing.T, dir, exe, comm string) {
	t.Helper()
	p := filepath.Join(dir, "1")
	os.RemoveAll(p)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if exe != "" {
		if err := os.Symlink(exe, filepath.Join(p, "exe")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(p, "comm"), []byte(comm+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestInitShuttingDown(t *testing.T) {
	proc := t.TempDir()
	for _, c := range []struct {
		exe, comm string
		want      bool
	}{
		{"/usr/lib/systemd/systemd-shutdown", "systemd-shutdow", true},
		{"/usr/lib/systemd/systemd-shutdown (deleted)", "systemd-shutdow", true},
		{"/usr/lib/systemd/systemd", "systemd", false},
		{"/bin/busybox", "init", false},
		{"", "systemd-shutdow", true}, // exe unreadable: comm, as the kernel cuts it
		{"", "systemd", false},
	} {
		fakeProc(t, proc, c.exe, c.comm)
		if prog, got := InitShuttingDown(filepath.Join(proc, "1")); got != c.want {
			t.Errorf("exe %q comm %q: shutting down = %v (%q), want %v", c.exe, c.comm, got, prog, c.want)
		}
	}
}

func leaveKeeper(t *testing.T, mi string) (*Keeper, string, string) {
	t.Helper()
	proc, dir := t.TempDir(), t.TempDir()
	mip := filepath.Join(dir, "mountinfo")
	if err := os.WriteFile(mip, []byte(mi), 0o644); err != nil {
		t.Fatal(err)
	}
	k := New(Options{Proc: proc, Mountinfo: mip}, slog.New(slog.DiscardHandler))
	return k, proc, mip
}

func TestLeaveDueNeedsShutdownAndReadOnlyRoot(t *testing.T) {
	k, proc, mip := leaveKeeper(t, miNFSRootRW)
	fakeProc(t, proc, "/usr/lib/systemd/systemd", "systemd")
	if ok, why := k.leaveDue(false); ok || why != "the system is not shutting down" {
		t.Errorf("running system: due=%v (%s)", ok, why)
	}
	// The borrower's request alone is no reason: init still uses the root.
	k.shutdownAsked.Store(true)
	if ok, _ := k.leaveDue(false); ok {
		t.Error("due on the shutdown request alone")
	}
	fakeProc(t, proc, "/usr/lib/systemd/systemd-shutdown", "systemd-shutdow")
	if ok, why := k.leaveDue(false); ok || !strings.Contains(why, "still writable") {
		t.Errorf("systemd-shutdown, root writable: due=%v (%s)", ok, why)
	}
	os.WriteFile(mip, []byte(miNFSRootRO), 0o644)
	if ok, why := k.leaveDue(false); !ok || !strings.Contains(why, "init is systemd-shutdown") {
		t.Errorf("systemd-shutdown, root read-only: due=%v (%s)", ok, why)
	}
	// A root read-only under a running init (an admin's remount) keeps it.
	fakeProc(t, proc, "/usr/lib/systemd/systemd", "systemd")
	if ok, _ := k.leaveDue(false); ok {
		t.Error("due with the root read-only but no shutdown")
	}
	if ok, why := k.leaveDue(true); !ok || !strings.Contains(why, "SIGTERM") {
		t.Errorf("SIGTERM, root read-only: due=%v (%s)", ok, why)
	}
	os.Remove(mip)
	if ok, why := k.leaveDue(true); ok || !strings.Contains(why, "cannot be read") {
		t.Errorf("mount table gone: due=%v (%s)", ok, why)
	}
}

// TestWatchLeaveDeletesOnceSystemdShutdownHasTheRootReadOnly plays
// systemd's shutdown: PID 1 becomes systemd-shutdown (no DELETE yet, the
// root is writable), then / turns read-only: the tunnel is deleted, once.
func TestWatchLeaveDeletesOnceSystemdShutdownHasTheRootReadOnly(t *testing.T) {
	k, proc, mip := leaveKeeper(t, miNFSRootRW)
	var closed atomic.Int32
	k.leaving.close = func(context.Context) { closed.Add(1) }
	looks := make(chan string, 64)
	k.leaving.kept = func(why string) {
		select {
		case looks <- why:
		default: // the test reads only the first few
		}
	}
	fakeProc(t, proc, "/usr/lib/systemd/systemd", "systemd")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { k.watchLeave(ctx); close(done) }()

	fakeProc(t, proc, "/usr/lib/systemd/systemd-shutdown", "systemd-shutdow")
	// Several rounds of the watch see systemd-shutdown with a writable
	// root, and keep the tunnel.
	for seen := 0; seen < 3; {
		select {
		case why := <-looks:
			if strings.Contains(why, "systemd-shutdown") {
				if !strings.Contains(why, "still writable") {
					t.Fatalf("the watch kept the tunnel under systemd-shutdown for another reason: %s", why)
				}
				seen++
			}
		case <-done:
			t.Fatalf("the watch ended (tunnel deleted %d times) while the NFS root was writable", closed.Load())
		case <-time.After(30 * time.Second):
			t.Fatal("the watch did not look at PID 1 and the mount table again within 30 s")
		}
	}
	if n := closed.Load(); n != 0 {
		t.Fatalf("tunnel deleted %d times while the NFS root was writable", n)
	}
	os.WriteFile(mip+".new", []byte(miNFSRootRO), 0o644)
	os.Rename(mip+".new", mip)
	select {
	case <-k.leaving.done:
	case <-time.After(30 * time.Second):
		t.Fatal("no DELETE after the root turned read-only under systemd-shutdown")
	}
	<-done
	k.leaveOnExit() // SIGTERM afterwards: nothing more
	if n := closed.Load(); n != 1 {
		t.Fatalf("tunnel deleted %d times, want 1", n)
	}
}

// TestLeaveOnExitKeepsTheTunnelForAWritableRoot: SIGTERM while the NFS
// root is writable (an init that kills all before unmounting) must not
// cut the root off; the keeper exits without DELETE.
func TestLeaveOnExitKeepsTheTunnelForAWritableRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("waits leaveGrace")
	}
	k, proc, _ := leaveKeeper(t, miNFSRootRW)
	fakeProc(t, proc, "/sbin/init", "init")
	var closed atomic.Int32
	k.leaving.close = func(context.Context) { closed.Add(1) }
	k.leaveOnExit()
	if n := closed.Load(); n != 0 {
		t.Fatalf("tunnel deleted on SIGTERM with the NFS root writable")
	}
}

func TestLeaveOnExitDeletesWhenTheRootIsReadOnly(t *testing.T) {
	k, proc, _ := leaveKeeper(t, miNFSRootRO)
	fakeProc(t, proc, "/bin/busybox", "init")
	var closed atomic.Int32
	k.leaving.close = func(context.Context) { closed.Add(1) }
	k.leaveOnExit()
	if n := closed.Load(); n != 1 {
		t.Fatalf("tunnel deleted %d times on SIGTERM with the root read-only, want 1", n)
	}
}

// TestWatchLeaveUnderSysvinitSaysTheRootIsReadOnlyAndKeepsTheTunnel plays
// sysvinit's rc 0 after the keeper ran the root's poweroff: PID 1 stays
// init, sendsigs spares the keeper, umountroot makes / read-only, and halt
// (read from the root) runs after that. The keeper says once that the
// root is read-only, and does not delete the tunnel.
func TestWatchLeaveUnderSysvinitSaysTheRootIsReadOnlyAndKeepsTheTunnel(t *testing.T) {
	k, proc, mip := leaveKeeper(t, miNFSRootRW)
	var logs syncbuf.Buffer
	k.log = slog.New(slog.NewTextHandler(&logs, nil))
	var closed atomic.Int32
	k.leaving.close = func(context.Context) { closed.Add(1) }
	looks := make(chan string, 256)
	k.leaving.kept = func(why string) {
		select {
		case looks <- why:
		default:
		}
	}
	fakeProc(t, proc, "/sbin/init", "init")
	k.shutdownAsked.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { k.watchLeave(ctx); close(done) }()
	<-looks
	if strings.Contains(logs.String(), "read-only") {
		t.Fatalf("said read-only while the root is writable: %s", logs.String())
	}
	os.WriteFile(mip+".new", []byte(miNFSRootRO), 0o644)
	os.Rename(mip+".new", mip)
	deadline := time.After(30 * time.Second)
	for !strings.Contains(logs.String(), "the network root is read-only after the shutdown request") {
		select {
		case <-looks:
		case <-deadline:
			t.Fatalf("the keeper never said the root is read-only: %s", logs.String())
		}
	}
	for i := 0; i < 3; i++ {
		<-looks
	}
	cancel()
	<-done
	if n := closed.Load(); n != 0 {
		t.Fatalf("tunnel deleted %d times under a running sysvinit: halt is still read from the root", n)
	}
	if n := strings.Count(logs.String(), "read-only after the shutdown request"); n != 1 {
		t.Fatalf("said it %d times, want once:\n%s", n, logs.String())
	}
}

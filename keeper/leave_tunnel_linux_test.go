package keeper

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// An init that sends every process SIGTERM before the root is read-only
// (runit's stage 3, OpenRC's killprocs, sysvinit's sendsigs for a keeper
// not listed in sendsigs.omit.d): the keeper must not delete the tunnel
// under the writable NFS root. Its IKE SA stays at the gateway (no DELETE;
// the gateway learns by DPD), and in the kernel plane its states outlive
// it, so the root can still be synced and made read-only.
func TestSIGTERMWithTheNFSRootWritableSendsNoDelete(t *testing.T) {
	if testing.Short() {
		t.Skip("waits leaveGrace")
	}
	srv, _, id, gd := lentServerAndGatewayDaemon(t)
	dir := t.TempDir()
	mi := filepath.Join(dir, "mountinfo")
	if err := os.WriteFile(mi, []byte(miNFSRootRW), 0o644); err != nil {
		t.Fatal(err)
	}
	proc := t.TempDir()
	fakeProc(t, proc, "/sbin/runit", "runit")
	ours, theirs := net.Pipe()
	defer ours.Close()
	k := New(Options{Tunnel: id, Listen: "127.0.0.1:0", Mountinfo: mi, Proc: proc, Control: theirs}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Do(t, func() { k.Run(ctx) })
	}()
	ours.SetReadDeadline(time.Now().Add(30 * time.Second))
	if ev, err := bufio.NewReader(ours).ReadString('\n'); err != nil {
		t.Fatalf("no event from the keeper: %v", err)
	} else {
		t.Logf("keeper: %s", ev)
	}
	go func() { // nobody reads the keeper's later events
		b := make([]byte, 512)
		for {
			if _, err := ours.Read(b); err != nil {
				return
			}
		}
	}()
	if n := len(gd.Status()); n != 1 {
		t.Fatalf("gateway has %d IKE SAs, want 1", n)
	}
	cancel() // SIGTERM
	select {
	case <-done:
	case <-time.After(leaveGrace + 10*time.Second):
		t.Fatal("the keeper did not stop within leaveGrace")
	}
	time.Sleep(time.Second) // a DELETE, had one gone, is in by now
	if n := len(gd.Status()); n != 1 {
		t.Fatalf("gateway has %d IKE SAs after the keeper stopped with the NFS root writable, want 1: the keeper deleted the tunnel under the root", n)
	}
}

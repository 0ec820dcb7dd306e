package agent

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"testing"
)

// A keeper its supervisor restarted before the chroot reports its tunnel
// again on the control channel; PID 1 takes the chrooted answer after it.
func TestKeeperIntoRootSkipsTunnelEvents(t *testing.T) {
	ours, keeperEnd := net.Pipe()
	defer keeperEnd.Close()
	a := &Agent{log: slog.New(slog.DiscardHandler), keeperCtl: ours}
	go func() {
		line, err := bufio.NewReader(keeperEnd).ReadString('\n')
		if err != nil || line != "chroot "+NewRoot+"\n" {
			keeperEnd.Write([]byte("error: got " + line + "\n"))
			return
		}
		keeperEnd.Write([]byte("tunnel up 10.9.0.2 kernel\nchrooted " + NewRoot + "\n"))
	}()
	if err := a.keeperIntoRoot(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestKeeperIntoRootRefusesAnotherAnswer(t *testing.T) {
	ours, keeperEnd := net.Pipe()
	defer keeperEnd.Close()
	a := &Agent{log: slog.New(slog.DiscardHandler), keeperCtl: ours}
	go func() {
		bufio.NewReader(keeperEnd).ReadString('\n')
		keeperEnd.Write([]byte("error: chroot(\"/sysroot\") = no such file\n"))
	}()
	if err := a.keeperIntoRoot(context.Background()); err == nil {
		t.Fatal("an error answer was taken for the chroot")
	}
}

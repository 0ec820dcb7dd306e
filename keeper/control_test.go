package keeper

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// ask sends one line on a keeper's control channel and reads the answer.
func ask(t *testing.T, line string) string {
	t.Helper()
	ours, theirs := net.Pipe()
	defer ours.Close()
	k := New(Options{}, slog.New(slog.DiscardHandler))
	go k.serveControl(context.Background(), theirs)
	if _, err := ours.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	answer, err := bufio.NewReader(ours).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(answer)
}

func TestControlRefusesUnknownCommand(t *testing.T) {
	if got := ask(t, "reboot now"); !strings.HasPrefix(got, `error: unknown command "reboot"`) {
		t.Fatalf("answer = %q", got)
	}
}

func TestControlRefusesRelativeChroot(t *testing.T) {
	if got := ask(t, "chroot sysroot"); !strings.Contains(got, "not an absolute, clean path") {
		t.Fatalf("answer = %q", got)
	}
}

func TestStatusWithoutTunnelHasNoTunnelPart(t *testing.T) {
	k := New(Options{Mountinfo: "/proc/self/mountinfo"}, slog.New(slog.DiscardHandler))
	st, err := k.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Tunnel != nil {
		t.Fatalf("status of a keeper without tunnel shows one: %+v", st.Tunnel)
	}
}

func FuzzParseChroot(f *testing.F) {
	f.Add("chroot /sysroot")
	f.Add("chroot /sysroot/../etc")
	f.Add("reboot")
	f.Fuzz(func(t *testing.T, line string) {
		dir, err := parseChroot(line)
		if err == nil && (!strings.HasPrefix(dir, "/") || filepath.Clean(dir) != dir) {
			t.Fatalf("accepted %q as %q", line, dir)
		}
	})
}

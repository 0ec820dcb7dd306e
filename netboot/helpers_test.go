package netboot

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ferry/internal/syncbuf"
)

var (
	macKnown   = net.HardwareAddr{0x52, 0x54, 0x00, 0x42, 0x00, 0x01}
	macOther   = net.HardwareAddr{0x52, 0x54, 0x00, 0x42, 0x00, 0x02}
	macUnknown = net.HardwareAddr{0x52, 0x54, 0x00, 0x42, 0x00, 0x99}
)

const testCmdline = "console=ttyS0 ferry.lender=https://10.42.0.1:8443 ferry.ca=sha256:ab12 ferry.token=T0KEN"

// testFiles writes a fake kernel and initrd and returns their paths.
func testFiles(t testing.TB) (kernel, initrd string) {
	d := t.TempDir()
	kernel, initrd = filepath.Join(d, "vmlinuz"), filepath.Join(d, "initrd.img")
	os.WriteFile(kernel, []byte("KERNEL-BYTES"), 0o644)
	os.WriteFile(initrd, bytes.Repeat([]byte("I"), 70000), 0o644)
	return kernel, initrd
}

func testPolicy(t testing.TB) *StaticPolicy {
	k, i := testFiles(t)
	return &StaticPolicy{MACs: []net.HardwareAddr{macKnown, macOther},
		Spec: BootSpec{Kernel: Artifact{Path: k}, Initrd: Artifact{Path: i}, Cmdline: testCmdline}}
}

func testConfig(mode Mode, log *syncbuf.Buffer) Config {
	c := Config{
		Interface: "nbtest0", ServerIP: netip.MustParseAddr("10.42.0.1"), Mode: mode,
		HTTPBase: "http://10.42.0.1:8080",
		Pool: Pool{
			First: netip.MustParseAddr("10.42.0.100"), Last: netip.MustParseAddr("10.42.0.101"),
			Prefix: netip.MustParsePrefix("10.42.0.0/24"), Router: netip.MustParseAddr("10.42.0.1"),
			LeaseTime: time.Hour,
		},
	}
	if log != nil {
		c.Log = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return c
}

func newTestServer(t testing.TB, mode Mode, p Policy, log *syncbuf.Buffer) *Server {
	t.Helper()
	s, err := New(testConfig(mode, log), p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var bg = context.Background()

package lender

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"ferry/netboot"
)

// TestNetbootAnswersOnlyPendingBootsAndLogsTheRest: a MAC outside every
// lease is refused and the refusal is in the lender's log at Info (what
// an operator sees); a leased MAC is admitted and boots image A with its
// boot's one token on its command line.
func TestNetbootAnswersOnlyPendingBootsAndLogsTheRest(t *testing.T) {
	f := newFixture(t, 1)
	var logs bytes.Buffer
	f.m.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p := policy{m: f.m, cfg: NetbootConfig{KernelA: "/k", InitrdA: "/i", Cmdline: "console=ttyS0"}}
	stranger, _ := net.ParseMAC("52:54:00:42:00:99")
	if err := p.Admit(context.Background(), stranger); !errors.Is(err, netboot.ErrUnknownMachine) {
		t.Fatalf("Admit(stranger) = %v, want ErrUnknownMachine", err)
	}
	if !strings.Contains(logs.String(), "no pending boot") || !strings.Contains(logs.String(), "mac=52:54:00:42:00:99") {
		t.Fatalf("log lacks the refusal of the stranger:\n%s", logs.String())
	}
	if _, err := f.m.RequestLease(context.Background(), leaseReq("key-00000042", 1)); err != nil {
		t.Fatal(err)
	}
	leased, _ := net.ParseMAC(macOf(0))
	if err := p.Admit(context.Background(), leased); err != nil {
		t.Fatalf("Admit(leased %s) = %v, want nil", leased, err)
	}
	before, _ := f.m.BootFor(macOf(0))
	spec, err := p.Boot(context.Background(), netboot.Fetch{MAC: leased, From: testFrom})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := f.m.BootFor(macOf(0))
	if after.Token != before.Token || !strings.Contains(spec.Cmdline, "ferry.token="+before.Token) ||
		!strings.HasPrefix(spec.Cmdline, "console=ttyS0 ferry.lender=") || after.State != bootFetched {
		t.Fatalf("Boot cmdline %q, boot %s: want console=ttyS0, then the lender's parameters with the boot's one token %s (now %s), fetched",
			spec.Cmdline, after.State, before.Token, after.Token)
	}
}

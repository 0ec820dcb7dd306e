package lender

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"ferry/netboot"
)

// TestNetbootCmdlineAsksForDHCPUnlessTheConfigGivesAnIP: image A takes its
// address by DHCP unless the operator's cmdline carries an ip= of its own.
func TestNetbootCmdlineAsksForDHCPUnlessTheConfigGivesAnIP(t *testing.T) {
	mac, _ := net.ParseMAC(macOf(0))
	for _, tc := range []struct{ cmdline, want, not string }{
		{"console=ttyS0 quiet", " ip=dhcp", ""},
		{"console=ttyS0 ip=10.54.3.10::10.54.3.1:255.255.255.0::eth0:off", "console=ttyS0 ip=10.54.3.10::", "ip=dhcp"},
		{"", "ip=dhcp", ""},
	} {
		f := newFixture(t, 1) // one script per boot: a boot per case
		if _, err := f.m.RequestLease(context.Background(), leaseReq("key-00000054", 1)); err != nil {
			t.Fatal(err)
		}
		p := policy{m: f.m, cfg: NetbootConfig{KernelA: "/k", InitrdA: "/i", Cmdline: tc.cmdline}}
		spec, err := p.Boot(context.Background(), netboot.Fetch{MAC: mac, From: testFrom})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(spec.Cmdline, tc.want) || (tc.not != "" && strings.Contains(spec.Cmdline, tc.not)) ||
			strings.Count(spec.Cmdline, "ip=") != 1 || !strings.Contains(spec.Cmdline, "ferry.token=") {
			t.Errorf("cmdline %q gives %q: want %q, one ip=, the token, and no %q", tc.cmdline, spec.Cmdline, tc.want, tc.not)
		}
	}
}

func TestNetbootDHCPLeasesLastTheLongestLendingUnlessConfigured(t *testing.T) {
	if got := (NetbootConfig{}).leaseTime(); got != 90*24*time.Hour {
		t.Errorf("default dhcp lease time %v, want 90 days (the longest lending)", got)
	}
	if got := (NetbootConfig{DHCPLeaseTime: Duration(time.Hour)}).leaseTime(); got != time.Hour {
		t.Errorf("configured dhcp lease time 1h became %v", got)
	}
}

func TestNetbootRefusesARouterOutsideThePool(t *testing.T) {
	m := &Manager{log: slog.New(slog.DiscardHandler)}
	base := NetbootConfig{Interface: "lo", ServerIP: "10.54.4.1", Mode: "dhcp", PoolFirst: "10.54.4.100",
		PoolLast: "10.54.4.150", Prefix: "10.54.4.0/24"}
	for _, tc := range []struct {
		router string
		dns    []string
		want   string
	}{
		{"10.54.5.1", nil, `netboot.router "10.54.5.1"`},
		{"router.example", nil, `netboot.router "router.example"`},
		{"10.54.4.1", []string{"ns.example"}, `netboot.dns[0] "ns.example"`},
	} {
		c := base
		c.Router, c.DNS = tc.router, tc.dns
		if _, err := netbootServer(m, c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("router %q dns %q: %v, want an error naming %s", tc.router, tc.dns, err, tc.want)
		}
	}
	c := base
	c.Router, c.DNS = "10.54.4.1", []string{"10.54.4.53"}
	if _, err := netbootServer(m, c); err != nil {
		t.Errorf("router and dns inside the prefix refused: %v", err)
	}
}

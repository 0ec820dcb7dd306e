package agent

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"ferry/ipsec/ike"
	"ferry/netcfg"
)

// dhcpLink is what netcfg.Up returns after A's DHCP exchange.
func dhcpLink(t *testing.T, lease time.Duration) *netcfg.Link {
	t.Helper()
	cfg, err := netcfg.ParseIP("10.54.2.100::10.54.2.1:255.255.255.0::eth0:off")
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("52:54:00:54:02:10")
	return &netcfg.Link{Name: "eth0", MAC: mac, Addr: cfg.Prefix(), Carrier: true, Config: cfg,
		Lease: &netcfg.Lease{Server: net.ParseIP("10.54.2.1").To4(), Duration: lease, Obtained: time.Now()}}
}

func TestBKeepsTheAddressADHCPLeaseGaveAsStaticIP(t *testing.T) {
	var con bytes.Buffer
	a, err := New(&con, slog.New(slog.DiscardHandler), "ip=dhcp")
	if err != nil {
		t.Fatal(err)
	}
	link := dhcpLink(t, 90*24*time.Hour)
	a.ipConfig, a.settings = link.Config.String(), &Settings{}
	a.printAddress(link)
	if !strings.Contains(con.String(), "ferry: address 10.54.2.100/24 dev eth0 via 10.54.2.1 from dhcp server 10.54.2.1, lease 2160h0m0s until ") {
		t.Fatalf("A's console: %q, want the address, its dhcp server and lease", con.String())
	}
	js, _ := json.Marshal(a.carriedState())
	var st State
	if err := json.Unmarshal(js, &st); err != nil {
		t.Fatal(err)
	}
	if st.IP != "10.54.2.100::10.54.2.1:255.255.255.0::eth0:off" || st.DHCP == nil || st.DHCP.Seconds != 90*24*3600 {
		t.Fatalf("state ip=%q dhcp=%+v, want A's lease as a static ip= and the lease record", st.IP, st.DHCP)
	}
	cfg, err := netcfg.ParseIP(st.IP)
	if err != nil || cfg.DHCP || !cfg.Client.Equal(net.ParseIP("10.54.2.100")) {
		t.Fatalf("B parses ip=%q as %+v, %v; want the static 10.54.2.100", st.IP, cfg, err)
	}
	con.Reset()
	b, _ := New(&con, slog.New(slog.DiscardHandler), "rdinit=/ferry/bin/init")
	b.state = &st
	link.Lease = nil
	b.printAddress(link)
	if !strings.Contains(con.String(), "kept from A's dhcp lease (server 10.54.2.1) until ") {
		t.Fatalf("B's console: %q, want the address kept from A's lease", con.String())
	}
}

func TestAWarnsWhenTheDHCPLeaseEndsBeforeTheLending(t *testing.T) {
	var con bytes.Buffer
	a, _ := New(&con, slog.New(slog.DiscardHandler), "ip=dhcp")
	a.printAddress(dhcpLink(t, time.Hour))
	a.ident = &ike.InitiatorState{Certs: []*x509.Certificate{{NotAfter: time.Now().Add(24 * time.Hour)}}}
	a.checkLeaseOutlastsLending()
	if !strings.Contains(con.String(), "ferry: warning: dhcp lease ends") {
		t.Fatalf("console %q: want a warning that the 1h lease ends before the 24h lending", con.String())
	}
	con.Reset()
	a.printAddress(dhcpLink(t, 48*time.Hour))
	con.Reset()
	a.checkLeaseOutlastsLending()
	if con.Len() != 0 {
		t.Fatalf("console %q: a lease longer than the lending needs no warning", con.String())
	}
}

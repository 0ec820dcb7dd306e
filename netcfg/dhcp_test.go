package netcfg

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// ack builds a DHCPACK granting 10.54.1.20/24 with the given options.
func ack(t testing.TB, yi string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.ParseIP(yi)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.54.1.1"))),
	}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConfigFromACKKeepsTheCommandLinesHostName(t *testing.T) {
	a := ack(t, "10.54.1.20", dhcpv4.WithNetmask(net.CIDRMask(24, 32)), dhcpv4.WithRouter(net.ParseIP("10.54.1.1")),
		dhcpv4.WithOption(dhcpv4.OptHostName("fromserver")), dhcpv4.WithLeaseTime(3600))
	c, l, err := ConfigFromACK(a, &Config{DHCP: true, Hostname: "fromcmdline"})
	if err != nil {
		t.Fatal(err)
	}
	if c.String() != "10.54.1.20::10.54.1.1:255.255.255.0:fromcmdline::off" || l.Duration != time.Hour || !l.Server.Equal(net.ParseIP("10.54.1.1")) {
		t.Fatalf("ConfigFromACK = %q, lease %v; want the command line's host name and 1h from 10.54.1.1", c, l)
	}
	c, _, _ = ConfigFromACK(a, &Config{DHCP: true})
	if c.Hostname != "fromserver" {
		t.Fatalf("without a host name on the command line, got %q, want option 12's", c.Hostname)
	}
}

func TestConfigFromACKRefusesWhatItCannotApply(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		a          *dhcpv4.DHCPv4
	}{
		{"no address", "yiaddr 0.0.0.0", ack(t, "0.0.0.0")},
		{"broadcast", "yiaddr 255.255.255.255", ack(t, "255.255.255.255")},
		{"loopback", "yiaddr 127.0.0.1", ack(t, "127.0.0.1")},
		{"holey mask", "option 1 subnet mask 255.0.255.0", ack(t, "10.54.1.20", dhcpv4.WithNetmask(net.IPv4Mask(255, 0, 255, 0)))},
		{"router elsewhere", "option 3 router 10.99.0.1", ack(t, "10.54.1.20", dhcpv4.WithNetmask(net.CIDRMask(24, 32)), dhcpv4.WithRouter(net.ParseIP("10.99.0.1")))},
		{"router is us", "option 3 router 10.54.1.20", ack(t, "10.54.1.20", dhcpv4.WithNetmask(net.CIDRMask(24, 32)), dhcpv4.WithRouter(net.ParseIP("10.54.1.20")))},
	} {
		_, _, err := ConfigFromACK(tc.a, &Config{DHCP: true})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ConfigFromACK = %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
	offer := ack(t, "10.54.1.20", dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))
	if _, _, err := ConfigFromACK(offer, &Config{}); err == nil {
		t.Error("ConfigFromACK took an OFFER for an ACK")
	}
}

func TestConfigFromACKDropsBadHostNameAndExtraDNSAndCapsInfiniteLease(t *testing.T) {
	a := ack(t, "10.54.1.20", dhcpv4.WithOption(dhcpv4.OptHostName("bad name;rm")),
		dhcpv4.WithDNS(net.ParseIP("10.54.1.53"), net.ParseIP("0.0.0.0"), net.ParseIP("10.54.1.54"), net.ParseIP("10.54.1.55")),
		dhcpv4.WithLeaseTime(0xffffffff))
	c, l, err := ConfigFromACK(a, &Config{DHCP: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "" || len(c.DNS) != 2 || !c.DNS[1].Equal(net.ParseIP("10.54.1.54")) || c.Prefix().String() != "10.54.1.20/8" {
		t.Fatalf("ConfigFromACK = %q, want no host name, DNS 10.54.1.53 and .54, the classful /8", c)
	}
	if l.Duration != maxLeaseTime {
		t.Fatalf("an infinite lease became %v, want %v", l.Duration, maxLeaseTime)
	}
}

// FuzzConfigFromACK: whatever a DHCP server sends, ConfigFromACK either
// refuses it or returns a configuration that ParseIP reads back the same.
func FuzzConfigFromACK(f *testing.F) {
	for _, a := range []*dhcpv4.DHCPv4{
		ack(f, "10.54.1.20", dhcpv4.WithNetmask(net.CIDRMask(24, 32)), dhcpv4.WithRouter(net.ParseIP("10.54.1.1")),
			dhcpv4.WithDNS(net.ParseIP("10.54.1.53")), dhcpv4.WithOption(dhcpv4.OptHostName("lent1")), dhcpv4.WithLeaseTime(7200)),
		ack(f, "192.168.7.9"),
		ack(f, "10.54.1.20", dhcpv4.WithNetmask(net.IPv4Mask(255, 0, 255, 0))),
	} {
		f.Add(a.ToBytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		c, l, err := ConfigFromACK(m, &Config{DHCP: true, Device: "eth0"})
		if err != nil {
			if c != nil || l != nil {
				t.Fatalf("ConfigFromACK returned %v, %v and %v", c, l, err)
			}
			return
		}
		again, err := ParseIP(c.String())
		if err != nil || again.String() != c.String() {
			t.Fatalf("ConfigFromACK = %q, which ParseIP reads as %v, %v", c, again, err)
		}
		if l.Duration < 0 || l.Duration > maxLeaseTime {
			t.Fatalf("lease duration %v out of bounds", l.Duration)
		}
	})
}

package netcfg

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestParseIPStatic(t *testing.T) {
	for _, tc := range []struct {
		in                         string
		client, server, gw, prefix string
		host, dev                  string
	}{
		{"10.9.0.2:10.9.0.1:10.9.0.254:255.255.255.0:lent1:eth0:off", "10.9.0.2", "10.9.0.1", "10.9.0.254", "10.9.0.2/24", "lent1", "eth0"},
		{"ip=10.9.0.2:10.9.0.1::24::eth0:none", "10.9.0.2", "10.9.0.1", "", "10.9.0.2/24", "", "eth0"},
		{"10.9.0.2:::/20:::", "10.9.0.2", "", "", "10.9.0.2/20", "", ""},
		{"10.9.0.2", "", "", "", "", "", ""}, // refused below: no colon
		{"10.9.0.2::::::", "10.9.0.2", "", "", "10.9.0.2/8", "", ""},
		{"172.16.5.5::::::", "172.16.5.5", "", "", "172.16.5.5/16", "", ""},
		{"192.168.1.7:::::", "192.168.1.7", "", "", "192.168.1.7/24", "", ""},
		{"10.1.2.3:10.1.2.1:10.1.2.1:255.255.0.0:h:enp0s3:off:10.1.2.53:8.8.8.8:10.1.2.123", "10.1.2.3", "10.1.2.1", "10.1.2.1", "10.1.2.3/16", "h", "enp0s3"},
	} {
		c, err := ParseIP(tc.in)
		if tc.client == "" {
			if err == nil {
				t.Errorf("ParseIP(%q) = %v, want an error", tc.in, c)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseIP(%q): %v", tc.in, err)
			continue
		}
		str := func(ip net.IP) string {
			if ip == nil {
				return ""
			}
			return ip.String()
		}
		if str(c.Client) != tc.client || str(c.Server) != tc.server || str(c.Gateway) != tc.gw ||
			c.Prefix().String() != tc.prefix || c.Hostname != tc.host || c.Device != tc.dev {
			t.Errorf("ParseIP(%q) = %s (prefix %s), want client %s server %s gw %s prefix %s host %q dev %q",
				tc.in, c, c.Prefix(), tc.client, tc.server, tc.gw, tc.prefix, tc.host, tc.dev)
		}
	}
}

func TestParseIPAcceptsDHCPAndTheKernelsSynonyms(t *testing.T) {
	for _, tc := range []struct{ in, host, dev, str string }{
		{"dhcp", "", "", "dhcp"},
		{"ip=dhcp", "", "", "dhcp"},
		{"on", "", "", "dhcp"},
		{"any", "", "", "dhcp"},
		{"both", "", "", "dhcp"},
		{":::::eth0:dhcp", "", "eth0", "::::" + ":eth0:dhcp"},
		{"::::lent1:enp1s0:on", "lent1", "enp1s0", "::::lent1:enp1s0:dhcp"},
		{"::::lent1::any:::", "lent1", "", "::::lent1::dhcp"},
	} {
		c, err := ParseIP(tc.in)
		if err != nil {
			t.Errorf("ParseIP(%q): %v", tc.in, err)
			continue
		}
		if !c.DHCP || c.Client != nil || c.Hostname != tc.host || c.Device != tc.dev || c.String() != tc.str {
			t.Errorf("ParseIP(%q) = %+v (%q), want DHCP host %q dev %q, String %q", tc.in, c, c, tc.host, tc.dev, tc.str)
		}
	}
}

func TestParseIPRefusesAddressesWithDHCP(t *testing.T) {
	for _, tc := range []struct{ in, field string }{
		{"10.0.0.2::::::dhcp", "CLIENT"},
		{":10.0.0.1:::::dhcp", "SERVER"},
		{"::10.0.0.1::::dhcp", "GATEWAY"},
		{":::24:::dhcp", "NETMASK"},
		{"::::::dhcp:10.0.0.53", "DNS0"},
		{"::::bad_host::dhcp", "HOSTNAME"},
		{":::::eth/0:dhcp", "DEVICE"},
	} {
		_, err := ParseIP(tc.in)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("ParseIP(%q) = %v, want an error naming field %s", tc.in, err, tc.field)
		}
	}
}

func TestParseIPRefusesBootpRarpAndIPv6AsNotSupported(t *testing.T) {
	for _, in := range []string{"bootp", "ip=rarp", "dhcp6", "auto6", "10.0.0.2::::::bootp", ":::::eth0:rarp"} {
		_, err := ParseIP(in)
		var ns *NotSupportedError
		if !errors.As(err, &ns) {
			t.Errorf("ParseIP(%q) = %v, want NotSupportedError", in, err)
			continue
		}
		if !strings.Contains(err.Error(), "not supported") || !strings.Contains(err.Error(), "AUTOCONF") || !strings.Contains(err.Error(), "ip=dhcp") {
			t.Errorf("ParseIP(%q) error %q should say AUTOCONF is not supported and offer ip=dhcp", in, err)
		}
	}
}

func TestParseIPErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ in, field string }{
		{"off", ""},
		{"none", ""},
		{"::::::off", "CLIENT"},
		{"10.0.0.300::::::", "CLIENT"},
		{"fe80::1", ""}, // colons make it fields: CLIENT "fe80" is bad
		{"0.0.0.0::::::", "CLIENT"},
		{"127.0.0.1::::::", "CLIENT"},
		{"10.0.0.2:server.example::::::", "SERVER"},
		{"10.0.0.2::10.0.1.1:24:::", "GATEWAY"},
		{"10.0.0.2::x:24:::", "GATEWAY"},
		{"10.0.0.2:::33:::", "NETMASK"},
		{"10.0.0.2:::255.0.255.0:::", "NETMASK"},
		{"10.0.0.2:::-1:::", "NETMASK"},
		{"10.0.0.2:::+8:::", "NETMASK"},
		{"10.0.0.2::::bad_host:::", "HOSTNAME"},
		{"10.0.0.2::::" + strings.Repeat("h", 65) + ":::", "HOSTNAME"},
		{"10.0.0.2:::::eth0/../x:", "DEVICE"},
		{"10.0.0.2:::::averyveryverylongname:", "DEVICE"},
		{"10.0.0.2::::::static", "AUTOCONF"},
		{"10.0.0.2:::::::dns", "DNS0"},
		{"10.0.0.2:::::::::ntp", "NTP0"},
		{"10.0.0.2::::::::::extra", ""},
	} {
		_, err := ParseIP(tc.in)
		if err == nil {
			t.Errorf("ParseIP(%q) succeeded, want an error", tc.in)
			continue
		}
		if tc.field == "" {
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("ParseIP(%q) = %v, want an error naming field %s", tc.in, err, tc.field)
		}
	}
}

func TestConfigStringRoundTrips(t *testing.T) {
	in := "10.1.2.3:10.1.2.1:10.1.2.1:255.255.0.0:h:enp0s3:off:10.1.2.53::10.1.2.123"
	c, err := ParseIP(in)
	if err != nil {
		t.Fatal(err)
	}
	if c.String() != in {
		t.Errorf("String() = %q, want %q", c.String(), in)
	}
}

func FuzzParseIP(f *testing.F) {
	for _, s := range []string{
		"10.9.0.2:10.9.0.1:10.9.0.254:255.255.255.0:lent1:eth0:off",
		"10.9.0.2:::24:::", "dhcp", "off", "::::::", "1.2.3.4:::::::1.1.1.1:2.2.2.2:3.3.3.3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseIP(s)
		if err != nil {
			if c != nil {
				t.Fatalf("ParseIP(%q) returned both %v and %v", s, c, err)
			}
			return
		}
		if c.DHCP != (c.Client == nil) || (!c.DHCP && (len(c.Client) != 4 || len(c.Mask) != 4)) {
			t.Fatalf("ParseIP(%q): client %v mask %v not IPv4", s, c.Client, c.Mask)
		}
		again, err := ParseIP(c.String())
		if err != nil {
			t.Fatalf("ParseIP(%q) = %q, which does not parse again: %v", s, c.String(), err)
		}
		if again.String() != c.String() {
			t.Fatalf("round trip of %q: %q != %q", s, again.String(), c.String())
		}
	})
}

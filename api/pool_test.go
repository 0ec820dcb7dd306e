package api

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseTunnelPoolTakesAnyIPv4Prefix(t *testing.T) {
	for in, want := range map[string]string{
		"10.52.8.0/24": "10.52.8.0/24", "10.52.8.7/24": "10.52.8.0/24", // host bits cleared
		"10.0.0.0/8": "10.0.0.0/8", "192.0.2.9/32": "192.0.2.9/32", "0.0.0.0/0": "0.0.0.0/0",
	} {
		got, err := ParseTunnelPool(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseTunnelPool(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10.52.8.0", "10.52.8.0/33", "fd00::/64", "::ffff:10.52.8.0/120", "pool", "10.52.8.0/24 ", strings.Repeat("1", 65)} {
		if p, err := ParseTunnelPool(bad); err == nil {
			t.Errorf("ParseTunnelPool(%q) = %v, want a refusal", bad, p)
		}
	}
	if _, err := ParseTunnelPool("fd00::/64"); err == nil || !strings.Contains(err.Error(), "IPv4") {
		t.Errorf("IPv6 pool: %v, want a refusal saying the tunnel carries IPv4", err)
	}
}

func TestCheckTunnelPoolNamesTheAddressItWouldCut(t *testing.T) {
	pool := netip.MustParsePrefix("10.52.0.0/16")
	err := CheckTunnelPool(pool, PathAddr{"the gateway", netip.MustParseAddr("192.0.2.1")},
		PathAddr{"the lender", netip.MustParseAddr("10.52.1.1")})
	if err == nil || !strings.Contains(err.Error(), "the lender (10.52.1.1)") || !strings.Contains(err.Error(), "10.52.0.0/16") {
		t.Fatalf("pool holding the lender: %v, want a refusal naming the pool and the lender", err)
	}
	if err := CheckTunnelPool(pool, PathAddr{"the gateway", netip.MustParseAddr("::ffff:10.52.0.1")}); err == nil {
		t.Fatal("an IPv4-mapped gateway inside the pool was accepted")
	}
	if err := CheckTunnelPool(pool, PathAddr{"the gateway", netip.MustParseAddr("10.53.0.1")}, PathAddr{"unknown", netip.Addr{}}); err != nil {
		t.Fatalf("pool beside the gateway: %v", err)
	}
}

func TestLeaseRequestTunnelPoolIsChecked(t *testing.T) {
	for name, c := range map[string]struct {
		pool string
		ok   bool
	}{"absent": {"", true}, "beside the gateway": {"10.41.8.0/24", true},
		"holds the gateway": {"10.41.0.0/16", false}, "IPv6": {"fd00::/64", false}, "garbage": {"x", false}} {
		t.Run(name, func(t *testing.T) {
			body := strings.Replace(goodLease, `"duration_seconds":3600`, `"duration_seconds":3600,"tunnel_pool":"`+c.pool+`"`, 1)
			var r LeaseRequest
			err := DecodeBytes([]byte(body), MaxLeaseRequest, &r)
			var fe *FieldError
			switch {
			case c.ok && err != nil:
				t.Fatalf("tunnel_pool %q refused: %v", c.pool, err)
			case !c.ok && (!errors.As(err, &fe) || fe.Field != "tunnel_pool"):
				t.Fatalf("tunnel_pool %q: %v, want a refusal naming tunnel_pool", c.pool, err)
			}
		})
	}
}

// The pool arrives from the network (lease request, enrollment answer):
// whatever parses is an IPv4 prefix with no host bits, and never wider
// than the text said.
func FuzzParseTunnelPool(f *testing.F) {
	for _, s := range []string{"10.52.8.0/24", "0.0.0.0/0", "fd00::/64", "10.1.2.3/33", "1.2.3.4/024"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseTunnelPool(s)
		if err != nil {
			return
		}
		if !p.IsValid() || !p.Addr().Is4() || p != p.Masked() {
			t.Fatalf("ParseTunnelPool(%q) = %v", s, p)
		}
		q, err := ParseTunnelPool(p.String())
		if err != nil || q != p {
			t.Fatalf("ParseTunnelPool(%q) = %v does not read back: %v %v", s, p, q, err)
		}
	})
}

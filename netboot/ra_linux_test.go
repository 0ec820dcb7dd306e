package netboot

import (
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// TestNamespaceRouterSolicitationGetsAnEmptyAdvertisement: in DHCP mode a
// router solicitation (iPXE's, which it repeats for ~16 s before fetching
// anything when no router answers) gets an advertisement at once that
// makes no one a router: lifetime 0, no managed/other flags, no prefix.
// ProxyDHCP mode (someone else's network) sends none.
func TestNamespaceRouterSolicitationGetsAnEmptyAdvertisement(t *testing.T) {
	for _, mode := range []Mode{ModeDHCP, ModeProxyDHCP} {
		t.Run(mode.String(), func(t *testing.T) {
			l := newLab(t)
			log := l.serve(mode)
			// Both ends' link-local addresses pass DAD (1-2 s) before
			// a solicitation goes out and an answer comes back; a
			// loaded machine (go test -race) takes longer. An answer
			// ends the wait; ProxyDHCP mode's silence is waited out.
			wait := 8 * time.Second
			if mode == ModeProxyDHCP {
				wait = 3 * time.Second
			}
			ra, err := l.solicit(wait)
			if mode == ModeProxyDHCP {
				if err == nil {
					t.Fatalf("ProxyDHCP mode advertised % x", ra)
				}
				return
			}
			if err != nil {
				t.Fatalf("no router advertisement: %v\nserver log:\n%s", err, log.String())
			}
			if len(ra) < 16 || ra[0] != byte(ipv6.ICMPTypeRouterAdvertisement) || ra[5] != 0 || ra[6] != 0 || ra[7] != 0 {
				t.Fatalf("advertisement % x: want type 134, no flags, router lifetime 0", ra)
			}
			for off := 16; off+2 <= len(ra) && ra[off+1] > 0; off += int(ra[off+1]) * 8 {
				if ra[off] == 3 {
					t.Fatalf("advertisement carries a prefix: % x", ra)
				}
			}
		})
	}
}

// solicit sends router solicitations from the client's namespace until
// an advertisement comes back (the link-local address is usable once DAD
// is done) or wait runs out.
func (l *lab) solicit(wait time.Duration) ([]byte, error) {
	var c *icmp.PacketConn
	var err error
	l.cli.Do(l.t, func() { c, err = icmp.ListenPacket("ip6:ipv6-icmp", "::") })
	if err != nil {
		l.t.Fatal(err)
	}
	defer c.Close()
	ifi, err := interfaceIn(l, l.cliIf)
	if err != nil {
		l.t.Fatal(err)
	}
	p := c.IPv6PacketConn()
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterAdvertisement)
	p.SetICMPFilter(&f)
	p.SetMulticastHopLimit(255)
	p.SetMulticastInterface(ifi)
	rs := []byte{byte(ipv6.ICMPTypeRouterSolicitation), 0, 0, 0, 0, 0, 0, 0}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(wait)
	var last error
	for time.Now().Before(deadline) {
		if _, err := p.WriteTo(rs, &ipv6.ControlMessage{IfIndex: ifi.Index, HopLimit: 255}, &net.IPAddr{IP: net.ParseIP("ff02::2"), Zone: ifi.Name}); err != nil {
			last = err
			time.Sleep(200 * time.Millisecond)
			continue
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _, _, err := p.ReadFrom(buf)
		if err == nil {
			return append([]byte(nil), buf[:n]...), nil
		}
		last = err
	}
	return nil, last
}

func interfaceIn(l *lab, name string) (*net.Interface, error) {
	var ifi *net.Interface
	var err error
	l.cli.Do(l.t, func() { ifi, err = net.InterfaceByName(name) })
	if err != nil && strings.Contains(err.Error(), "no such") {
		return nil, err
	}
	return ifi, err
}

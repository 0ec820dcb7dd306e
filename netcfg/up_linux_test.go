package netcfg

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"ferry/internal/netnstest"
)

// testNet is two fresh network namespaces joined by a veth pair: "lent"
// (holding ethlent, left down and unconfigured for Up) and "peer"
// (ethpeer, 10.54.0.1/24).
type testNet struct{ lent, peer *netnstest.NS }

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	n := &testNet{lent: netnstest.New(t, "netcfg"), peer: netnstest.New(t, "netcfg")}
	mac, err := net.ParseMAC(lentMAC)
	if err != nil {
		t.Fatal(err)
	}
	netnstest.Veth(t, netnstest.End{NS: n.lent, Name: "ethlent", MAC: mac, Down: true},
		netnstest.End{NS: n.peer, Name: "ethpeer", Addr: netip.MustParsePrefix("10.54.0.1/24")})
	return n
}

// lentMAC is the lent side's MAC, the one a DHCP server admits.
const lentMAC = "52:54:00:54:00:10"

// in runs f on a locked OS thread that has joined ns and a UTS namespace
// of its own (Up may set the host name: it must not be the host's), and
// returns what f returned. Unlike netnstest's Do it runs f on a goroutine
// of its own whose thread is never unlocked: no thread goes back to the
// pool with the unshared UTS namespace.
func in(t *testing.T, ns *netnstest.NS, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(ns.Handle); err != nil {
			done <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
			done <- fmt.Errorf("unshare UTS: %w", err)
			return
		}
		done <- f()
	}()
	return <-done
}

func TestUpConfiguresFirstEthernetAndReachesPeer(t *testing.T) {
	n := newTestNet(t)
	cfg, err := ParseIP("10.54.0.2:10.54.0.1:10.54.0.1:255.255.255.0:::off")
	if err != nil {
		t.Fatal(err)
	}

	// The peer listens; the lent side connects after Up.
	lnc := make(chan net.Listener, 1)
	if err := in(t, n.peer, func() error {
		ln, err := net.Listen("tcp", "10.54.0.1:0")
		lnc <- ln
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ln := <-lnc
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.WriteString(c, "hello from peer\n")
			c.Close()
		}
	}()

	err = in(t, n.lent, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		l, err := Up(ctx, cfg, nil)
		if err != nil {
			return fmt.Errorf("Up: %w", err)
		}
		if l.Name != "ethlent" || l.Addr.String() != "10.54.0.2/24" || len(l.MAC) != 6 || !l.Carrier {
			return fmt.Errorf("Up = %+v, want ethlent 10.54.0.2/24 with MAC and carrier", l)
		}
		nl, err := netlink.LinkByName("ethlent")
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(nl, netlink.FAMILY_V4)
		if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "10.54.0.2/24" || !addrs[0].Broadcast.Equal(net.ParseIP("10.54.0.255")) {
			return fmt.Errorf("addresses on ethlent = %v, %v; want 10.54.0.2/24 brd 10.54.0.255", addrs, err)
		}
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		var def bool
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.Equal(net.ParseIP("10.54.0.1")) && r.LinkIndex == nl.Attrs().Index {
				def = true
			}
		}
		if !def {
			return fmt.Errorf("no default route via 10.54.0.1 dev ethlent in %v", routes)
		}
		src, err := SourceAddr(net.ParseIP("10.54.0.1"))
		if err != nil || !src.Equal(net.ParseIP("10.54.0.2")) {
			return fmt.Errorf("SourceAddr(10.54.0.1) = %v, %v; want 10.54.0.2", src, err)
		}
		// A remote address goes via the default route, from our address too.
		if src, err := SourceAddr(net.ParseIP("192.0.2.9")); err != nil || !src.Equal(net.ParseIP("10.54.0.2")) {
			return fmt.Errorf("SourceAddr(192.0.2.9) = %v, %v; want 10.54.0.2 via the gateway", src, err)
		}
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			return fmt.Errorf("connect to peer: %w", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "hello from peer\n" {
			return fmt.Errorf("read from peer = %q, %v", b, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// And the peer reaches us: ping from its namespace.
	if out, err := n.peer.Command("ping", "-c1", "-W2", "10.54.0.2").CombinedOutput(); err != nil {
		if _, lerr := exec.LookPath("ping"); lerr == nil {
			t.Errorf("ping from peer to 10.54.0.2: %v: %s", err, out)
		}
	}
}

func TestUpWaitsForNamedLinkToAppear(t *testing.T) {
	n := newTestNet(t)
	cfg, err := ParseIP("10.54.0.3:::24::late0:off")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(500 * time.Millisecond)
		n.lent.Command("ip", "link", "set", "ethlent", "name", "late0").Run()
	}()
	err = in(t, n.lent, func() error {
		l, err := Up(context.Background(), cfg, nil)
		if err != nil {
			return err
		}
		if l.Name != "late0" {
			return fmt.Errorf("Up picked %s, want late0", l.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestUpGivesUpWhenNoLinkAppears(t *testing.T) {
	n := newTestNet(t)
	cfg, err := ParseIP("10.54.0.3:::24::nosuch0:off")
	if err != nil {
		t.Fatal(err)
	}
	cfg.LinkWait = 300 * time.Millisecond
	err = in(t, n.lent, func() error {
		_, err := Up(context.Background(), cfg, nil)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), `"nosuch0" did not appear`) {
		t.Fatalf("Up with a missing link = %v, want a timeout naming nosuch0", err)
	}
}

func TestUpReportsNoCarrierButReturnsLink(t *testing.T) {
	n := newTestNet(t)
	n.peer.Command("ip", "link", "set", "ethpeer", "down").Run()
	cfg, err := ParseIP("10.54.0.2:::24:::off")
	if err != nil {
		t.Fatal(err)
	}
	cfg.CarrierWait = 300 * time.Millisecond
	err = in(t, n.lent, func() error {
		l, err := Up(context.Background(), cfg, nil)
		if l == nil || l.Carrier {
			return fmt.Errorf("Up = %+v, want a link without carrier", l)
		}
		return err
	})
	if _, ok := err.(*NoCarrierError); !ok {
		t.Fatalf("Up with the peer down = %v, want *NoCarrierError", err)
	}
}

package netcfg

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testNet is two fresh network namespaces joined by a veth pair: "lent"
// (holding ethLent, left unconfigured for Up) and "peer" (10.54.0.1/24).
type testNet struct{ lent, peer string }

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	id := fmt.Sprintf("netcfg%d", os.Getpid()%100000)
	n := &testNet{lent: id + "l", peer: id + "p"}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.lent).Run()
		exec.Command("ip", "netns", "del", n.peer).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", n.lent},
		{"netns", "add", n.peer},
		{"link", "add", id + "a", "type", "veth", "peer", "name", id + "b"},
		{"link", "set", id + "a", "netns", n.lent, "name", "ethlent", "address", lentMAC},
		{"link", "set", id + "b", "netns", n.peer, "name", "ethpeer"},
		{"-n", n.peer, "link", "set", "lo", "up"},
		{"-n", n.peer, "addr", "add", "10.54.0.1/24", "dev", "ethpeer"},
		{"-n", n.peer, "link", "set", "ethpeer", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return n
}

// lentMAC is the lent side's MAC, the one a DHCP server admits.
const lentMAC = "52:54:00:54:00:10"

// in runs f on a locked OS thread that has joined the named network
// namespace and a UTS namespace of its own (Up may set the host name: it
// must not be the host's), and returns what f returned.
func in(t *testing.T, ns string, f func() error) error {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("netns %s: %v", ns, err)
	}
	defer h.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(h); err != nil {
			done <- fmt.Errorf("setns %s: %w", ns, err)
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
	if out, err := exec.Command("ip", "netns", "exec", n.peer, "ping", "-c1", "-W2", "10.54.0.2").CombinedOutput(); err != nil {
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
		exec.Command("ip", "-n", n.lent, "link", "set", "ethlent", "name", "late0").Run()
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
	exec.Command("ip", "-n", n.peer, "link", "set", "ethpeer", "down").Run()
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

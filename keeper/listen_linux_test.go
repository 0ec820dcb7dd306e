package keeper

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// getStatus asks addr for /status and decodes the answer. It dials on
// the calling thread (http.Client would dial on another goroutine, out
// of a test's network namespace).
func getStatus(addr string) (*Status, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/status", nil)
	if err := req.Write(c); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return nil, fmt.Errorf("GET %s/status: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/status: %s", addr, resp.Status)
	}
	var st Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET %s/status: %w", addr, err)
	}
	return &st, nil
}

// Hole 8 (a) of "Trust boundaries": in managed mode the keeper's plain
// HTTP status is for the borrower, through the tunnel, and for the root
// itself; with the default wildcard --listen it must not answer on the
// lender network, where the lent server's NIC is.
func TestStatusAnswersOnTheTunnelAndLoopbackOnly(t *testing.T) {
	srv, gw, id := lentServerAndGateway(t)
	const port = "7070"
	_, event := runKeeper(t, srv, Options{Tunnel: id, Listen: ":" + port, StateDir: t.TempDir(), Mountinfo: "/proc/self/mountinfo",
		ShutdownListen: ":7071", PowerOff: PowerOff{Signal: "SIGUSR2"}})
	up, ok := strings.CutPrefix(strings.TrimSpace(event), "tunnel up ")
	if !ok {
		t.Fatalf("keeper said %q; want tunnel up", event)
	}
	vip, _, _ := strings.Cut(up, " ")

	// The borrower, through the tunnel: the keeper binds the virtual IP
	// once it knows it, so allow it a few tries.
	var st *Status
	var err error
	gw.Do(t, func() {
		for range 20 {
			if st, err = getStatus(net.JoinHostPort(vip, port)); err == nil {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
	if err != nil || st.Tunnel == nil || st.Tunnel.VirtualIP != vip {
		t.Fatalf("status at the virtual IP %s through the tunnel: %+v, %v", vip, st, err)
	}
	// The root's own check (scripts/root-init.sh) asks loopback.
	srv.Do(t, func() { st, err = getStatus(net.JoinHostPort("127.0.0.1", port)) })
	if err != nil {
		t.Fatalf("status at 127.0.0.1:%s in the lent server: %v", port, err)
	}
	// Anyone on the lender network asks the server's NIC address.
	gw.Do(t, func() { st, err = getStatus(net.JoinHostPort(serverOuter.String(), port)) })
	if err == nil {
		t.Fatalf("status answered on the lender network at %s:%s: %+v", serverOuter, port, st)
	}
	t.Logf("lender network: %v", err)
	// The shutdown listener (HTTPS) follows the same rule; a TCP connect
	// tells where it listens.
	gw.Do(t, func() {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(vip, "7071"), 3*time.Second); err != nil {
			t.Errorf("shutdown listener at the virtual IP %s: %v", vip, err)
		} else {
			c.Close()
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(serverOuter.String(), "7071"), 3*time.Second); err == nil {
			c.Close()
			t.Errorf("shutdown listener answers on the lender network at %s:7071", serverOuter)
		}
	})
}

// When a reconnect brings another virtual IP, the endpoint moves: the
// old address stops answering, the new one answers. Loopback addresses
// stand in for two virtual IPs.
func TestEndpointMovesWithTheVirtualIP(t *testing.T) {
	served := make(chan struct{}, 4)
	e := &endpoint{name: "test", follow: true, port: "0", log: slog.New(slog.DiscardHandler),
		allow: func(netip.Addr) bool { return true },
		serve: func(ln net.Listener) error {
			for {
				c, err := ln.Accept()
				if err != nil {
					return err
				}
				c.Close()
				served <- struct{}{}
			}
		}}
	defer e.close()
	e.toVIP(netip.MustParseAddr("127.0.0.2"))
	first := e.vipLn.Addr().String()
	e.toVIP(netip.MustParseAddr("127.0.0.2")) // same address: nothing moves
	if e.vipLn.Addr().String() != first {
		t.Fatalf("listener moved from %s to %s for the same address", first, e.vipLn.Addr())
	}
	e.toVIP(netip.MustParseAddr("127.0.0.3"))
	second := e.vipLn.Addr().String()
	if c, err := net.Dial("tcp", first); err == nil {
		c.Close()
		t.Fatalf("old virtual IP %s still answers", first)
	}
	c, err := net.Dial("tcp", second)
	if err != nil {
		t.Fatalf("new virtual IP %s: %v", second, err)
	}
	c.Close()
	<-served
}

// With the virtual IP on a local link, Linux answers for it on every
// interface (the weak host model): a neighbour on the lender network
// that routes the virtual IP to the lent server's NIC reaches the
// listener in clear. Only addresses the tunnel carries may connect.
func TestVirtualIPListenerRefusesClearTextFromTheLenderNetwork(t *testing.T) {
	srv, gw, id := lentServerAndGateway(t)
	_, event := runKeeper(t, srv, Options{Tunnel: id, Listen: ":7070", StateDir: t.TempDir(), Mountinfo: "/proc/self/mountinfo"})
	up, ok := strings.CutPrefix(strings.TrimSpace(event), "tunnel up ")
	if !ok {
		t.Fatalf("keeper said %q; want tunnel up", event)
	}
	vip, _, _ := strings.Cut(up, " ")
	addr := net.JoinHostPort(vip, "7070")
	var err error
	// Through the tunnel first, so the listener is on the virtual IP.
	gw.Do(t, func() {
		for range 20 {
			if _, err = getStatus(addr); err == nil {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
	if err != nil {
		t.Fatalf("status at %s through the tunnel: %v", addr, err)
	}
	// Now the neighbour routes the virtual IP to the server's NIC, in clear.
	var st *Status
	gw.Do(t, func() {
		route := &netlink.Route{Dst: &net.IPNet{IP: net.ParseIP(vip).To4(), Mask: net.CIDRMask(32, 32)}, Gw: serverOuter.AsSlice()}
		if err = netlink.RouteReplace(route); err != nil {
			t.Fatalf("route %s via %s: %v", vip, serverOuter, err)
		}
		st, err = getStatus(addr)
	})
	if err == nil {
		t.Fatalf("status answered in clear from the lender network at %s: %+v", addr, st)
	}
	t.Logf("clear text from the lender network: %v", err)
}

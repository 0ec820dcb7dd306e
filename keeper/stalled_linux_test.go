package keeper

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/internal/netnstest"
)

// A real TCP connection, backing off behind an nftables drop as the NFS
// client's does during a WAN outage: once the drop is gone, the
// unstaller aborts it (its owner sees ECONNABORTED, the peer a reset),
// and leaves alone a connection outside the tunnel's selectors that
// backs off too and one through the tunnel that does not.
func TestUnstallerAbortsABackingOffConnection(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (scripts/ci-deps.sh installs nftables)")
	}
	ns := netnstest.New(t, "ferry-unstall-")
	ns.Run(t, "", "ip", "link", "set", "lo", "up")
	type pair struct{ client, server net.Conn }
	dial := func(addr string) pair {
		var p pair
		ns.Do(t, func() {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if p.client, err = net.Dial("tcp", ln.Addr().String()); err != nil {
				t.Fatal(err)
			}
			if p.server, err = ln.Accept(); err != nil {
				t.Fatal(err)
			}
		})
		t.Cleanup(func() { p.client.Close(); p.server.Close() })
		return p
	}
	tunnel, other, quiet := dial("127.0.0.2:2049"), dial("127.0.0.3:2049"), dial("127.0.0.2:2050")
	ns.Run(t, "table ip outage {\n chain out { type filter hook output priority 0;\n ip daddr { 127.0.0.2, 127.0.0.3 } tcp dport 2049 drop\n }\n}\n", "nft", "-f", "-")
	for _, p := range []pair{tunnel, other} {
		if _, err := p.client.Write([]byte("WRITE")); err != nil {
			t.Fatal(err)
		}
	}
	selectors := []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	var conns []tcpConn
	deadline := time.Now().Add(10 * time.Second)
	for len(backingOff(conns, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no back-off after 10 s behind the drop: %+v", conns)
		}
		time.Sleep(200 * time.Millisecond)
		var err error
		ns.Do(t, func() { conns, err = listTCP() })
		if err != nil {
			t.Skipf("sock_diag unusable on this kernel: %v", err)
		}
	}
	ns.Run(t, "", "nft", "delete", "table", "ip", "outage")

	var logs bytes.Buffer
	u := newUnstaller(slog.New(slog.NewTextHandler(&logs, nil)))
	var n int
	ns.Do(t, func() { n = u.reset(selectors, "test") })
	if n != 1 {
		t.Fatalf("reset %d connections, want 1 (the one through the tunnel):\n%s", n, logs.String())
	}
	want := fmt.Sprintf("local=%s remote=127.0.0.2:2049", tunnel.client.LocalAddr())
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logs.String())
	}
	tunnel.client.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := tunnel.client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNABORTED) {
		t.Errorf("the reset connection's owner read %v, want ECONNABORTED", err)
	}
	tunnel.server.SetReadDeadline(time.Now().Add(2 * time.Second))
	if b, err := io.ReadAll(tunnel.server); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the peer read %q, %v; want a reset", b, err)
	}
	// The others still carry data.
	for name, p := range map[string]pair{"outside the selectors": other, "not backing off": quiet} {
		if _, err := p.server.Write([]byte("ok")); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		p.client.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadFull(p.client, make([]byte, 2)); err != nil {
			t.Errorf("connection %s: %v", name, err)
		}
	}
}

// The whole keeper: a TCP connection through the tunnel (the NFS
// client's) sends into an 8 s outage of the lent server's network, and
// TCP backs off (its next retransmission due at about 12.6 s). When the
// network is back the gateway answers the keeper's liveness check, and
// the keeper aborts the connection at once, so that its owner reconnects
// instead of waiting out the back-off. On the code before, the read
// below times out.
func TestKeeperResetsTheConnectionBackingOffWhenTheTunnelIsBack(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (scripts/ci-deps.sh installs nftables)")
	}
	srv, gw, id := lentServerAndGateway(t)
	k, _ := runKeeper(t, srv, Options{Tunnel: id, Listen: "127.0.0.1:0", Mountinfo: "/proc/self/mountinfo"})
	waitTunnel(t, k, func(s *TunnelStatus) bool { return s.Up })
	var ln net.Listener
	var err error
	gw.Do(t, func() { ln, err = net.Listen("tcp", gwInner.Addr().String()+":2049") })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	var client net.Conn
	srv.Do(t, func() { client, err = net.DialTimeout("tcp", gwInner.Addr().String()+":2049", 10*time.Second) })
	if err != nil {
		t.Fatalf("dial through the tunnel: %v", err)
	}
	defer client.Close()
	server := <-accepted
	defer server.Close()

	gw.Run(t, "table ip outage {\n chain in { type filter hook input priority 0;\n iifname kpv1 drop\n }\n}\n", "nft", "-f", "-")
	start := time.Now()
	if _, err := client.Write([]byte("WRITE")); err != nil {
		t.Fatal(err)
	}
	waitTunnel(t, k, func(s *TunnelStatus) bool { return !s.Up })
	time.Sleep(8*time.Second - time.Since(start))
	gw.Run(t, "", "nft", "delete", "table", "ip", "outage")
	restored := time.Now()

	client.SetReadDeadline(restored.Add(4 * time.Second))
	_, err = client.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNABORTED) {
		t.Fatalf("4 s after the outage the connection through the tunnel read %v; want it aborted (ECONNABORTED) by the keeper", err)
	}
	t.Logf("aborted %s after the network came back", time.Since(restored).Round(10*time.Millisecond))
}

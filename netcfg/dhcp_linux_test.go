package netcfg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ferry/netboot"
)

// netbootEnv makes the test binary ferry's netboot server (see TestMain),
// started by `ip netns exec` so that every socket it opens is in the
// peer's namespace: IFACE,SERVERIP,ADMITTEDMAC,TFTPROOT.
const netbootEnv = "FERRY_NETCFG_NETBOOT"

func TestMain(m *testing.M) {
	if spec := os.Getenv(netbootEnv); spec != "" {
		os.Exit(serveNetboot(spec))
	}
	os.Exit(m.Run())
}

func serveNetboot(spec string) int {
	f := strings.Split(spec, ",")
	ip := netip.MustParseAddr(f[1])
	mac, _ := net.ParseMAC(f[2])
	cfg := netboot.Config{Interface: f[0], ServerIP: ip, Mode: netboot.ModeDHCP, TFTPRoot: f[3],
		Pool: netboot.Pool{First: netip.MustParseAddr("10.54.0.100"), Last: netip.MustParseAddr("10.54.0.110"),
			Prefix: netip.MustParsePrefix("10.54.0.0/24"), Router: ip,
			DNS: []netip.Addr{netip.MustParseAddr("10.54.0.53")}, LeaseTime: 2 * time.Hour},
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	s, err := netboot.New(cfg, &netboot.StaticPolicy{MACs: []net.HardwareAddr{mac}})
	if err == nil {
		err = s.Serve(context.Background())
	}
	fmt.Fprintln(os.Stderr, "netboot helper:", err)
	return 1
}

// startNetboot runs ferry's netboot DHCP server on the peer side,
// admitting only admit, and waits until it listens.
func startNetboot(t *testing.T, n *testNet, admit string) {
	t.Helper()
	// Its own process under `ip netns exec`, not in(): the server's
	// goroutines open sockets on threads of their own.
	cmd := exec.Command("ip", "netns", "exec", n.peer.Name, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), netbootEnv+"=ethpeer,10.54.0.1,"+admit+","+t.TempDir())
	startServer(t, cmd, "dhcp listening")
}

// startServer starts cmd and waits for ready on its stderr; it is killed
// at cleanup.
func startServer(t *testing.T, cmd *exec.Cmd, ready string) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), ready) {
				found <- true
			}
		}
		close(found)
	}()
	select {
	case ok := <-found:
		if !ok {
			t.Fatalf("%s ended before saying %q", cmd, ready)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not say %q within 10 s", cmd, ready)
	}
}

// runDHCP runs Up with ip=dhcp on the lent side and returns the link, the
// host name the UTS namespace ended with, and the default gateway route.
func runDHCP(t *testing.T, n *testNet, spec string, tune func(*Config)) (*Link, string, net.IP, error) {
	t.Helper()
	cfg, err := ParseIP(spec)
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(cfg)
	}
	var link *Link
	var host string
	var gw net.IP
	err = in(t, n.lent, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		if link, err = Up(ctx, cfg, nil); err != nil {
			return err
		}
		var u unix.Utsname
		unix.Uname(&u)
		host = unix.ByteSliceToString(u.Nodename[:])
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				gw = r.Gw
			}
		}
		return err
	})
	return link, host, gw, err
}

func TestUpDHCPTakesAddressRouterAndDNSFromFerryNetboot(t *testing.T) {
	n := newTestNet(t)
	startNetboot(t, n, lentMAC)
	link, host, gw, err := runDHCP(t, n, "::::lent54::dhcp", nil)
	if err != nil {
		t.Fatalf("Up(ip=dhcp) against ferry netboot: %v", err)
	}
	if link.Addr.String() != "10.54.0.100/24" || !gw.Equal(net.ParseIP("10.54.0.1")) || host != "lent54" {
		t.Fatalf("Up(ip=dhcp) = %s, default via %v, host %q; want 10.54.0.100/24 via 10.54.0.1, host lent54 (the command line's)", link, gw, host)
	}
	if link.Lease == nil || link.Lease.Duration != 2*time.Hour || !link.Lease.Server.Equal(net.ParseIP("10.54.0.1")) {
		t.Fatalf("lease %v, want 2h from 10.54.0.1", link.Lease)
	}
	if got := link.Config.String(); got != "10.54.0.100::10.54.0.1:255.255.255.0:lent54:ethlent:off:10.54.0.53:" {
		t.Fatalf("the applied configuration reads %q: B could not keep the same address from it", got)
	}
	if again, err := ParseIP(link.Config.String()); err != nil || again.DHCP || !again.Client.Equal(link.Config.Client) {
		t.Fatalf("ParseIP(%q) = %+v, %v; want the same static address", link.Config, again, err)
	}
	// netboot's HTTP server listens beside its DHCP server: reach it from
	// the leased address.
	err = in(t, n.lent, func() error {
		c, err := net.DialTimeout("tcp", "10.54.0.1:8080", 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if l := c.LocalAddr().String(); !strings.HasPrefix(l, "10.54.0.100:") {
			return fmt.Errorf("connected from %s, want the leased 10.54.0.100", l)
		}
		return nil
	})
	if err != nil {
		t.Errorf("reaching the DHCP server's host from the lease: %v", err)
	}
}

func TestUpDHCPTakesHostNameAndLeaseFromBusyboxUdhcpd(t *testing.T) {
	n := newTestNet(t)
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs busybox (udhcpd)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "udhcpd.conf")
	os.WriteFile(filepath.Join(dir, "leases"), nil, 0o644)
	os.WriteFile(conf, []byte(strings.Join([]string{
		"start 10.54.0.150", "end 10.54.0.160", "interface ethpeer",
		"lease_file " + filepath.Join(dir, "leases"), "pidfile " + filepath.Join(dir, "pid"),
		"opt subnet 255.255.255.0", "opt router 10.54.0.1", "opt dns 10.54.0.53 10.54.0.54 10.54.0.55",
		"opt hostname fromudhcpd", "opt lease 600", ""}, "\n")), 0o644)
	// udhcpd logs nothing when it is ready: -f keeps it in front, and the
	// client's retransmissions cover its start.
	cmd := n.peer.Command(bb, "udhcpd", "-f", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	link, host, gw, err := runDHCP(t, n, "dhcp", nil)
	if err != nil {
		t.Fatalf("Up(ip=dhcp) against udhcpd: %v", err)
	}
	a, _ := netip.ParseAddr(link.Config.Client.String())
	if a.Less(netip.MustParseAddr("10.54.0.150")) || netip.MustParseAddr("10.54.0.160").Less(a) ||
		link.Addr.String() != a.String()+"/24" || !gw.Equal(net.ParseIP("10.54.0.1")) {
		t.Fatalf("Up(ip=dhcp) = %s via %v, want an address of 10.54.0.150-160/24 via 10.54.0.1", link, gw)
	}
	if host != "fromudhcpd" || link.Lease.Duration != 10*time.Minute || len(link.Config.DNS) != 2 {
		t.Fatalf("host %q, lease %v, DNS %v; want udhcpd's host name, 10m and the first two DNS servers", host, link.Lease, link.Config.DNS)
	}
}

func TestUpDHCPWithoutOfferNamesLinkAndTimeWaited(t *testing.T) {
	n := newTestNet(t)
	startNetboot(t, n, "52:54:00:54:00:99") // admits another machine only
	start := time.Now()
	_, _, _, err := runDHCP(t, n, "dhcp", func(c *Config) {
		c.DHCPWait, c.DHCPFirstTry = 2500*time.Millisecond, 300*time.Millisecond
	})
	took := time.Since(start)
	var nl *NoLeaseError
	if !errors.As(err, &nl) || nl.Stage != "offer" {
		t.Fatalf("Up(ip=dhcp) with no offer = %v, want a *NoLeaseError at the offer", err)
	}
	if !strings.Contains(err.Error(), "dhcp on ethlent: no offer after 2.5") || nl.Waited < 2500*time.Millisecond {
		t.Fatalf("error %q (waited %v) should name ethlent and the 2.5 s waited", err, nl.Waited)
	}
	if took > 10*time.Second {
		t.Fatalf("Up gave up after %v, want about DHCPWait (2.5 s)", took)
	}
}

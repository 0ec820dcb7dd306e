package netboot

import (
	"bytes"
	"context"
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

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"ferry/internal/netnstest"
	"ferry/internal/syncbuf"
)

// helperEnv makes the test binary a netboot server (see TestMain): it runs
// inside the server namespace as its own process, so every socket it opens
// lives there.
const helperEnv = "FERRY_NETBOOT_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(runHelper(spec))
	}
	os.Exit(m.Run())
}

// runHelper serves MODE,IFACE,SERVERIP,TFTPROOT,KERNEL,INITRD until killed.
func runHelper(spec string) int {
	f := strings.Split(spec, ",")
	mode, _ := ParseMode(f[0])
	ip := netip.MustParseAddr(f[2])
	pfx := netip.PrefixFrom(ip, 24).Masked()
	cfg := Config{
		Interface: f[1], ServerIP: ip, Mode: mode, TFTPRoot: f[3],
		Pool: Pool{First: ip.Next(), Last: ip.Next().Next(), Prefix: pfx, Router: ip},
		Log:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	p := &StaticPolicy{MACs: []net.HardwareAddr{macKnown},
		Spec: BootSpec{Kernel: Artifact{Path: f[4]}, Initrd: Artifact{Path: f[5]}, Cmdline: testCmdline}}
	s, err := New(cfg, p)
	if err == nil {
		err = s.Serve(context.Background())
	}
	fmt.Fprintln(os.Stderr, "helper:", err)
	return 1
}

// lab is two namespaces joined by a veth pair: the server's and the client's.
type lab struct {
	t                  *testing.T
	srv, cli           *netnstest.NS
	srvIf, cliIf       string
	serverIP, clientIP string
	tftpRoot           string
	kernel, initrd     string
}

func newLab(t *testing.T) *lab {
	pid := os.Getpid()
	oct := pid%250 + 1
	l := &lab{t: t,
		srv: netnstest.New(t, "netboot"), cli: netnstest.New(t, "netboot"),
		srvIf: fmt.Sprintf("nb%ds", pid), cliIf: fmt.Sprintf("nb%dc", pid),
		serverIP: fmt.Sprintf("10.42.%d.1", oct), clientIP: fmt.Sprintf("10.42.%d.50", oct),
		tftpRoot: t.TempDir(),
	}
	l.kernel, l.initrd = testFiles(t)
	os.WriteFile(filepath.Join(l.tftpRoot, DefaultBIOSFile), bytes.Repeat([]byte("undionly"), 9000), 0o644)
	os.WriteFile(filepath.Join(l.tftpRoot, DefaultEFIFile), []byte("efi"), 0o644)
	os.WriteFile(filepath.Join(l.tftpRoot, "secret"), []byte("not for tftp"), 0o644)
	netnstest.Veth(t, netnstest.End{NS: l.srv, Name: l.srvIf, Addr: netip.MustParsePrefix(l.serverIP + "/24")},
		netnstest.End{NS: l.cli, Name: l.cliIf, MAC: macKnown})
	return l
}

// serve starts the server process in mode and waits until it listens.
func (l *lab) serve(mode Mode) *syncbuf.Buffer {
	t := l.t
	var log syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	// Its own process under `ip netns exec`, not netnstest's Do: the
	// server's goroutines open sockets on threads of their own.
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.srv.Name, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join([]string{mode.String(), l.srvIf, l.serverIP, l.tftpRoot, l.kernel, l.initrd}, ","))
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for !(strings.Contains(log.String(), "dhcp listening") && strings.Contains(log.String(), "tftp listening") && strings.Contains(log.String(), "http listening")) {
		if time.Now().After(deadline) || strings.Contains(log.String(), "helper:") {
			t.Fatalf("server did not start:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &log
}

func (l *lab) client(hw net.HardwareAddr) *nclient4.Client {
	var c *nclient4.Client
	var err error
	l.cli.Do(l.t, func() {
		c, err = nclient4.New(l.cliIf, nclient4.WithHWAddr(hw), nclient4.WithTimeout(time.Second), nclient4.WithRetry(2))
	})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	return c
}

func TestNamespaceDHCPModeChainloadsIPXEAndServesScript(t *testing.T) {
	l := newLab(t)
	l.serve(ModeDHCP)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	lease, err := l.client(macKnown).Request(ctx, pxeROM(macKnown, 0)...)
	if err != nil {
		t.Fatalf("PXE ROM DORA: %v", err)
	}
	ack := lease.ACK
	if ack.YourIPAddr.String() != l.clientIP[:strings.LastIndex(l.clientIP, ".")]+".2" || ack.BootFileNameOption() != DefaultBIOSFile || ack.ServerIPAddr.String() != l.serverIP {
		t.Fatalf("ACK: yiaddr %v file %q next-server %v", ack.YourIPAddr, ack.BootFileNameOption(), ack.ServerIPAddr)
	}

	lease, err = l.client(macKnown).Request(ctx, ipxe(macKnown)...)
	if err != nil {
		t.Fatalf("iPXE DORA: %v", err)
	}
	url := lease.ACK.BootFileNameOption()
	if !strings.HasPrefix(url, "http://"+l.serverIP+":8080/ipxe/") {
		t.Fatalf("iPXE boot file %q, want its script URL", url)
	}
	// the client takes its address and fetches the script like iPXE would
	l.cli.Run(t, "", "ip", "addr", "add", lease.ACK.YourIPAddr.String()+"/24", "dev", l.cliIf)
	script := l.cli.Run(t, "", "busybox", "wget", "-q", "-O", "-", url)
	if !strings.Contains(script, testCmdline) {
		t.Fatalf("script lacks the boot parameters:\n%s", script)
	}
}

func TestNamespaceUnknownMACGetsNothing(t *testing.T) {
	l := newLab(t)
	log := l.serve(ModeDHCP)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if offer, err := l.client(macUnknown).DiscoverOffer(ctx, pxeROM(macUnknown, 0)...); err == nil {
		t.Fatalf("unknown MAC got an offer of %v", offer.YourIPAddr)
	}
	if !strings.Contains(log.String(), "mac="+macUnknown.String()) {
		t.Fatalf("silence not logged with the MAC:\n%s", log.String())
	}
}

func TestNamespaceProxyDHCPOffersBootWithoutAddress(t *testing.T) {
	l := newLab(t)
	l.serve(ModeProxyDHCP)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offer, err := l.client(macKnown).DiscoverOffer(ctx, pxeROM(macKnown, 0)...)
	if err != nil {
		t.Fatalf("proxy DISCOVER: %v", err)
	}
	if !offer.YourIPAddr.IsUnspecified() || offer.BootFileNameOption() != DefaultBIOSFile || offer.ClassIdentifier() != "PXEClient" {
		t.Fatalf("proxy offer: yiaddr %v file %q class %q", offer.YourIPAddr, offer.BootFileNameOption(), offer.ClassIdentifier())
	}
	// the PXE ROM, now with an address from the network's DHCP, asks on 4011
	l.cli.Run(t, "", "ip", "addr", "add", l.clientIP+"/24", "dev", l.cliIf)
	ack := l.ask4011(ipxe(macKnown))
	if ack.MessageType() != dhcpv4.MessageTypeAck || !strings.Contains(ack.BootFileNameOption(), "/ipxe/") {
		t.Fatalf("4011: %s with %q", ack.MessageType(), ack.BootFileNameOption())
	}
}

// ask4011 sends a REQUEST to the boot server port from the client's address.
func (l *lab) ask4011(mods []dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t := l.t
	req, _ := dhcpv4.New(append(mods, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(net.ParseIP(l.clientIP)))...)
	var conn net.PacketConn
	var err error
	l.cli.Do(t, func() { conn, err = net.ListenPacket("udp4", l.clientIP+":68") })
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.WriteTo(req.ToBytes(), &net.UDPAddr{IP: net.ParseIP(l.serverIP), Port: 4011}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no answer on 4011: %v", err)
	}
	ack, err := dhcpv4.FromBytes(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

func TestNamespaceTFTPServesIPXEBinaryOnly(t *testing.T) {
	l := newLab(t)
	l.serve(ModeDHCP)
	l.cli.Run(t, "", "ip", "addr", "add", l.clientIP+"/24", "dev", l.cliIf)
	out := filepath.Join(t.TempDir(), "got")
	l.cli.Run(t, "", "busybox", "tftp", "-g", "-b", "1468", "-r", DefaultBIOSFile, "-l", out, l.serverIP)
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile(filepath.Join(l.tftpRoot, DefaultBIOSFile))
	if !bytes.Equal(got, want) {
		t.Fatalf("fetched %d bytes, want %d", len(got), len(want))
	}
	for _, name := range []string{"secret", "../../../etc/passwd", "/etc/passwd"} {
		bad := filepath.Join(t.TempDir(), "bad")
		err := l.cli.Command("busybox", "tftp", "-g", "-r", name, "-l", bad, l.serverIP).Run()
		if b, _ := os.ReadFile(bad); err == nil || len(b) > 0 {
			t.Errorf("%q: fetched %d bytes (err %v)", name, len(b), err)
		}
	}
}

package vmlab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/internal/netnstest"
)

// The PXE lab: one namespace, a bridge holding the guest's tap and a
// stranger's veth; the lender (and the borrower) on the bridge's address.
const (
	pxeServer   = "10.42.0.1"
	pxeMAC      = "52:54:00:42:00:01"
	pxeStranger = "52:54:00:42:00:99"
)

// TestPXE: a QEMU guest PXE-boots image A from `ferry lender`. The lender
// runs with a "netboot" section (DHCP mode on the bridge; with
// FERRY_PXE_MODE=proxydhcp busybox udhcpd hands out the addresses and the
// lender answers as ProxyDHCP only); the guest's MAC is in the inventory
// with the qmp power driver; QEMU starts paused, so only the lender's
// power-on (cont) starts it, which a real borrower's lease request
// causes. With PXE there is no -append: the bootstrap parameters reach
// the kernel only through the lender's iPXE script. FERRY_LAB=1 runs it.
func TestPXE(t *testing.T) {
	requireLab(t)
	mode := os.Getenv("FERRY_PXE_MODE")
	if mode == "" {
		mode = "dhcp"
	}
	if mode != "dhcp" && mode != "proxydhcp" {
		t.Fatalf("FERRY_PXE_MODE=%q: want dhcp or proxydhcp", mode)
	}
	t0 := time.Now()
	repo := Repo(t)
	ferry := labFerry(t, repo)
	lab := filepath.Join(repo, "build", "lab")
	vmlinuz, moddir := KernelCache(t, repo, lab)
	dir := filepath.Join(lab, fmt.Sprintf("pxe-%d", os.Getpid()))
	os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	keepOnFailure(t, dir, "FERRY_PXE_KEEP")
	path := func(n string) string { return filepath.Join(dir, n) }
	fail := func(format string, a ...any) {
		t.Helper()
		var b strings.Builder
		for _, f := range []string{"lender.log", "borrower.log", "udhcpc.log"} {
			fmt.Fprintf(&b, "--- %s (tail)\n%s\n", f, tailFile(path(f), 1500))
		}
		fmt.Fprintf(&b, "--- console (tail)\n%s\n", clean(tailFile(path("console.log"), 2000)))
		t.Fatalf("%s (files in %s)\n%s", fmt.Sprintf(format, a...), dir, b.String())
	}

	initrd := path("initrd-a.img")
	if out, err := Run(ferry, "initrd", "build", "-o", initrd, "--kernel-modules", moddir, "--module", "virtio_net", "--module", "virtio_pci", "--compress", "zstd"); err != nil {
		t.Fatalf("image A: %v %s", err, out)
	}
	pki := map[string]string{}
	lo, err := NewOrg(path("pki"), "lender-org")
	if err != nil {
		t.Fatal(err)
	}
	bo, err := NewOrg(path("pki"), "borrower-org")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct {
		org  *Org
		name string
		ips  []string
	}{{lo, "lender-m2m", []string{pxeServer}}, {bo, "borrower-m2m", nil}, {bo, "borrower-images", []string{pxeServer}}} {
		if pki[l.name], pki[l.name+".key"], err = l.org.Issue(l.name, l.ips...); err != nil {
			t.Fatal(err)
		}
	}

	ns := netnstest.New(t, "fpxe")
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"link", "add", "br0", "type", "bridge"},
		{"tuntap", "add", "dev", "tap0", "mode", "tap"}, {"link", "add", "strange0", "type", "veth", "peer", "name", "stranger"},
		{"link", "set", "stranger", "address", pxeStranger}, {"link", "set", "tap0", "master", "br0", "up"},
		{"link", "set", "strange0", "master", "br0", "up"}, {"addr", "add", pxeServer + "/24", "dev", "br0"},
		{"link", "set", "br0", "up"}, {"link", "set", "stranger", "up"}} {
		if out, err := Run(append([]string{"ip", "-n", ns.Name}, args...)...); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	routerAdverts(t, ns, "br0")
	if mode == "proxydhcp" {
		os.WriteFile(path("udhcpd.conf"), []byte(fmt.Sprintf("start 10.42.0.100\nend 10.42.0.150\ninterface br0\nmax_leases 16\n"+
			"lease_file %s\npidfile %s\noption subnet 255.255.255.0\noption router %s\n", path("udhcpd.leases"), path("udhcpd.pid"), pxeServer)), 0o600)
		os.WriteFile(path("udhcpd.leases"), nil, 0o600)
		Start(t, "udhcpd", path("udhcpd.log"), "ip", "netns", "exec", ns.Name, "busybox", "udhcpd", "-f", path("udhcpd.conf"))
	}

	vm := QEMU{Name: "ferry-pxe", Dir: dir, NetNS: ns.Name, Tap: "tap0", MAC: pxeMAC, Paused: true, MemMB: 512, Timeout: 5 * time.Minute}.Start(t)

	ldir := path("lender")
	out, err := Run(ferry, "lender", "init", "--dir", ldir, "--config", filepath.Join(ldir, "lender-init.json"), "--host", pxeServer)
	caSHA := ""
	if m := regexp.MustCompile(`(?m)^ca_sha256\s+(\S+)`).FindStringSubmatch(out); m != nil {
		caSHA = m[1]
	}
	if err != nil || caSHA == "" {
		t.Fatalf("lender init printed no ca_sha256: %v %s", err, out)
	}
	netboot := map[string]any{"interface": "br0", "server_ip": pxeServer, "mode": mode,
		"http_addr": pxeServer + ":8080", "kernel_a": vmlinuz, "initrd_a": initrd, "cmdline": "console=ttyS0"}
	if mode == "dhcp" {
		netboot["pool_first"], netboot["pool_last"], netboot["prefix"] = "10.42.0.100", "10.42.0.150", "10.42.0.0/24"
	}
	lconf := writeJSONFile(t, path("lender.json"), map[string]any{"dir": ldir, "agent_listen": pxeServer + ":8443",
		"public_url": "https://" + pxeServer + ":8443", "m2m_listen": pxeServer + ":9443",
		"m2m_cert": pki["lender-m2m"], "m2m_key": pki["lender-m2m.key"], "m2m_client_ca": bo.PEM, "token_ttl": "10m", "netboot": netboot})
	Start(t, "lender", path("lender.log"), "ip", "netns", "exec", ns.Name, ferry, "lender", "serve", "--config", lconf)
	if !waitFor(10*time.Second, func() bool { return countIn(path("lender.log"), "dhcp listening") > 0 }) {
		fail("lender did not start serving DHCP")
	}
	if out, err := Run(ferry, "lender", "server", "add", "--dir", ldir, "--mac", pxeMAC, "--power", "qmp", "--power-opt", "socket="+vm.QMP); err != nil {
		fail("lender server add: %v %s", err, out)
	}
	if vm.Console.Text() != "" {
		fail("the guest printed before the lender powered it on")
	}

	bdir := path("borrower")
	os.MkdirAll(path("template/etc"), 0o755)
	os.WriteFile(path("template/etc/hostname"), []byte("lent\n"), 0o644)
	bconf := writeJSONFile(t, path("borrower.json"), map[string]any{"dir": bdir, "lender_url": "https://" + pxeServer + ":9443",
		"m2m_cert": pki["borrower-m2m"], "m2m_key": pki["borrower-m2m.key"], "m2m_ca": lo.PEM,
		"borrower_ca": bo.PEM, "gateway": pxeServer + ":4500", "allow_file": path("allow.jsonl"),
		"image_listen": pxeServer + ":9444", "image_url": "https://" + pxeServer + ":9444/images",
		"image_cert": pki["borrower-images"], "image_key": pki["borrower-images.key"],
		"tunnel_pool": "10.42.8.0/24", "nfs_server": pxeServer, "nfs_export": "/srv/roots", "nfs_exports": "none",
		"default_template": path("template"), "poll_seconds": 1})
	if out, err := Run(ferry, "borrower", "image", "add", "--dir", bdir, "b1", "--kernel", vmlinuz, "--initrd", initrd, "--cmdline", "console=ttyS0"); err != nil {
		fail("borrower image add: %v %s", err, out)
	}
	Start(t, "borrower", path("borrower.log"), "ip", "netns", "exec", ns.Name, ferry, "borrower", "serve", "--config", bconf)
	waitFor(10*time.Second, func() bool { _, err := Run(ferry, "borrower", "lease", "list", "--dir", bdir); return err == nil })
	tLease := time.Now()
	out, err = Run(ferry, "borrower", "lease", "request", "--dir", bdir, "--count", "1", "--image", "b1", "--key", fmt.Sprintf("pxe-test-%d", os.Getpid()))
	if err != nil || !strings.Contains(out, "state active") {
		fail("lease request printed %q (%v), want an active lease", out, err)
	}

	// A stranger asks DHCP: the lender must stay silent towards it.
	_, strangerErr := Run("ip", "netns", "exec", ns.Name, "busybox", "udhcpc", "-i", "stranger", "-n", "-q", "-f", "-t", "3", "-T", "1", "-A", "1",
		"-V", "PXEClient:Arch:00000:UNDI:002001", "-s", "/bin/true")

	m, err := vm.Console.Expect(regexp.MustCompile(`Command line:.*ferry\.token=.*`), 3*time.Minute, vm.Done())
	if err != nil {
		fail("guest kernel never printed its command line with the bootstrap parameters: %v", err)
	}
	tCmdline := time.Now()
	cmdline := m[0] + " "
	t.Log(regexp.MustCompile(`ferry\.token=\S*`).ReplaceAllString(m[0], "ferry.token=(one-time, redacted)"))
	for _, want := range []string{"ferry.lender=https://" + pxeServer + ":8443 ", "ferry.ca=" + caSHA + " ", "console=ttyS0 "} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("guest command line lacks %q", want)
		}
	}
	tok := regexp.MustCompile(`ferry\.token=([A-Za-z0-9_-]{43,64}) `).FindStringSubmatch(cmdline)
	if tok == nil {
		fail("guest command line has no well-formed one-time token")
	}
	// The token is this boot's: the lender mints one per script, so it
	// must be the pending boot's (until A enrolls with it).
	if pending, err := Run(ferry, "lender", "boot", "--dir", ldir, pxeMAC); err == nil {
		if !strings.Contains(pending, `"token":"`+tok[1]+`"`) {
			t.Errorf("the guest's token is not the one the lender holds for %s", pxeMAC)
		}
	} else if l, _ := Run(ferry, "lender", "lease", "list", "--dir", ldir); !strings.Contains(l, "enroll") {
		t.Errorf("no pending boot for %s and no enrollment either", pxeMAC)
	}
	llog, _ := os.ReadFile(path("lender.log"))
	for _, what := range []string{`dhcp answered.*file=http`, `script served`, `file served.*file=kernel`, `file served.*file=initrd`} {
		if !regexp.MustCompile(what).Match(llog) {
			t.Errorf("lender log lacks %q", what)
		}
	}
	if regexp.MustCompile(`dhcp answered.*mac=` + pxeStranger).Match(llog) {
		t.Errorf("lender answered DHCP for %s, which no lease holds", pxeStranger)
	}
	if !regexp.MustCompile(`no pending boot.*mac=` + pxeStranger).Match(llog) {
		t.Errorf("lender did not log its silence towards %s", pxeStranger)
	}
	if mode == "dhcp" && strangerErr == nil {
		t.Errorf("udhcpc got a lease for %s", pxeStranger)
	}
	if mode == "proxydhcp" {
		if countIn(path("udhcpd.log"), "sending ACK") == 0 {
			t.Errorf("udhcpd handed out no address")
		}
		for _, l := range regexp.MustCompile(`dhcp answered.*`).FindAll(llog, -1) {
			if !strings.Contains(string(l), "yiaddr=0.0.0.0") {
				t.Errorf("ProxyDHCP handed out an address: %s", l)
			}
		}
	}
	if t.Failed() {
		fail("see above")
	}
	fmt.Printf("pxe: ok (%s): lease -> power on (QMP cont) -> DHCP -> iPXE script -> kernel with bootstrap parameters in %.1f s (whole test %.1f s); stranger %s unanswered by the lender\n",
		mode, tCmdline.Sub(tLease).Seconds(), time.Since(t0).Seconds(), pxeStranger)
}

// routerAdverts sends one IPv6 router advertisement a second on link in
// ns (no prefix, lifetime 0: "no default router here") until the test
// ends: iPXE's "Configuring" waits for IPv6 autoconfiguration as well as
// DHCP, about 15 s under TCG when no router advertises.
func routerAdverts(t *testing.T, ns *netnstest.NS, link string) {
	t.Helper()
	var fd, idx int
	var err error
	ns.Do(t, func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(link); err != nil {
			return
		}
		idx = ifi.Index
		if fd, err = syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_ICMPV6); err != nil {
			return
		}
		if err = syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_HOPS, 255); err == nil {
			err = syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_IF, idx)
		}
	})
	if err != nil {
		t.Fatalf("router advertisements on %s: %v", link, err)
	}
	// Type 134, code 0, checksum (the kernel's), hop limit 64, flags 0,
	// router lifetime 0, reachable 0, retrans 0.
	ra := []byte{134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	to := &syscall.SockaddrInet6{ZoneId: uint32(idx), Addr: [16]byte{0: 0xff, 1: 0x02, 15: 0x01}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			syscall.Sendto(fd, ra, 0, to) // fails until DAD gives a link-local address
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; syscall.Close(fd) })
}

func writeJSONFile(t *testing.T, path string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

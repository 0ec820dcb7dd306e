package vmlab

import (
	"context"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"ferry/agent"
)

// TestFullChain is the whole managed transfer (docs/ARCHITECTURE.md steps
// 1-14) with the real managers, the real gateway and a QEMU lent server:
// a borrower lease request makes the lender power the guest on, it
// PXE-boots image A, enrolls, opens the tunnel, fetches image B through
// it and kexecs; B's keeper re-opens the tunnel, the root is mounted
// through it, switch_root; then the checks, `lease return` and the
// timeline. FERRY_LAB=1 runs it (make e2e; make demo with FERRY_STREAM=1,
// which streams the console). FERRY_DATAPLANE=auto|kernel|user (default
// auto, which must pick kernel) is ferry.dataplane= on A's command line;
// FERRY_FULL_KEEP=1 keeps the work directory after a pass.
func TestFullChain(t *testing.T) {
	requireLab(t, "ganesha.nfsd", "tcpdump", "curl", "unshare", "nft")
	plane := os.Getenv("FERRY_DATAPLANE")
	want := map[string]string{"": "kernel ESP", "auto": "kernel ESP", "kernel": "kernel ESP", "user": "user-space ESP"}[plane]
	if want == "" {
		t.Fatalf("FERRY_DATAPLANE=%q: want auto, kernel or user", plane)
	}
	wantPlane := map[string]string{"kernel ESP": "kernel", "user-space ESP": "user"}[want]
	repo := Repo(t)
	ferry := labFerry(t, repo)
	t0 := time.Now()
	// The user's own parts (ownparts.go, docs/LAB.md): kernels, initrds,
	// modules, root template, guest memory, firmware.
	im := OwnParts(t, ferry, labCache(t), BuildImages(t, repo, ferry, filepath.Join(repo, "build", "full-lab")))
	t.Logf("images built in %s", time.Since(t0).Round(time.Second))
	dir := filepath.Join(im.Lab, fmt.Sprintf("run-%d", os.Getpid()))
	os.RemoveAll(dir)
	keepOnFailure(t, dir, "FERRY_FULL_KEEP")
	crl := filepath.Join(dir, "lender.crl")
	cfg := ChainConfig{Ferry: ferry, Images: im, Dir: dir, DataPlane: plane, StrayRoot: true,
		// The borrower relays the lender's CRL to the gateway.
		GatewayExtra: map[string]any{"crl": crl}, BorrowerExtra: map[string]any{"gateway_crl_file": crl}}
	switch fw := os.Getenv("FERRY_FIRMWARE"); fw {
	case "", FirmwareBIOS:
	case FirmwareUEFI:
		cfg.Firmware, cfg.ReadyTimeout = FirmwareUEFI, 20*time.Minute // OVMF under TCG
	default:
		t.Fatalf("FERRY_FIRMWARE=%q: want bios or uefi", fw)
	}
	// One's own root runs none of the lab root's checks (root-init.sh):
	// its readiness is FERRY_ROOT_READY, and the stray-root probe is the
	// lab root's to make.
	ownRoot := os.Getenv("FERRY_ROOT_TEMPLATE") != ""
	if ownRoot {
		re := os.Getenv("FERRY_ROOT_READY")
		if re == "" {
			t.Fatal("FERRY_ROOT_TEMPLATE needs FERRY_ROOT_READY, a console regular expression that says that root is up")
		}
		rx, err := regexp.Compile(re)
		if err != nil {
			t.Fatalf("FERRY_ROOT_READY=%q: %v", re, err)
		}
		cfg.RootReady, cfg.StrayRoot = rx, false
	}
	c := NewChain(t, cfg)
	if os.Getenv("FERRY_STREAM") == "1" {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.VM.Console.Follow(ctx, time.Now(), Stream(os.Stdout)); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	diskBefore, err := FileSHA256(filepath.Join(dir, "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}

	t.Logf("borrower lease request (drives everything; console in %s)", c.VM.Console.Path)
	ready := c.Request()
	con := c.VM.Console.Text()
	checkManagedConsole(c, con, want, !ownRoot)
	status, err := c.KeeperStatus()
	if err != nil {
		c.Fail("keeper status through the tunnel: %v", err)
	}
	tun, _ := status["tunnel"].(map[string]any)
	if status["root_fstype"] != "nfs4" || tun["up"] != true || tun["dataplane"] != wantPlane {
		c.Fail("keeper status: want root_fstype nfs4, the tunnel up, data plane %s: %v", wantPlane, status)
	}
	// The root goes through the keeper: neither the OOM killer nor swap
	// may take it (keeper.HoldInMemory).
	mem, _ := status["memory"].(map[string]any)
	if mem["oom_score_adj"] != float64(-1000) || mem["locked"] != true {
		c.Fail("keeper status: want oom_score_adj -1000 and its memory locked: %v", mem)
	}
	t.Logf("keeper held in RAM: %.0f kB resident", mem["resident_kb"])
	// So is its supervisor, which holds the key to restart it with.
	sup, _ := status["supervisor"].(map[string]any)
	smem, _ := sup["memory"].(map[string]any)
	if smem["oom_score_adj"] != -1000.0 || smem["locked"] != true || status["restarts"] != 0.0 {
		c.Fail("keeper status: want a supervisor held in RAM (oom_score_adj -1000, locked) and no restart: %v", status)
	}
	t.Logf("keeper's supervisor (pid %.0f) held in RAM: %.0f kB resident", sup["pid"], smem["resident_kb"])
	exports, _ := os.ReadFile(c.path("ferry-exports.conf"))
	if !strings.Contains(string(exports), "Clients = "+c.VIP+";") || strings.Count(string(exports), "EXPORT {") != 1 {
		c.Fail("the borrower's ganesha exports must hold one export, to %s alone: %s", c.VIP, exports)
	}
	checkLeaseShow(c)

	tret := time.Now()
	show, err := c.Return(context.Background())
	if err != nil {
		c.Fail("lease return: %v\n%s", err, show)
	}
	off := time.Since(tret)
	con = c.VM.Console.Text()
	if !strings.Contains(con, "reboot: Power down") {
		c.Fail("QEMU ended but the guest's kernel never powered down (the lender's power-off came first?)")
	}
	if exports, _ := os.ReadFile(c.path("ferry-exports.conf")); strings.Contains(string(exports), "EXPORT {") {
		c.Fail("the lent server's export is still there after the return: %s", exports)
	}
	checkCRL(c, con, crl)
	if after, err := FileSHA256(filepath.Join(dir, "disk.raw")); err != nil || after != diskBefore {
		c.Fail("the lent server's disk changed: sha256 %s -> %s (%v)", diskBefore, after, err)
	}
	wan, lan, err := c.Leaks()
	esp, _ := c.WAN.Packets("src host " + c.ServerIP + " and udp port 4500")
	icmp, _ := c.ICMPAboutIKE()
	if err != nil || len(wan) > 0 || len(lan) > 0 || len(esp) == 0 {
		c.Fail("in clear on the WAN %d, on the lender LAN %d, ESP-in-UDP from the server %d (%v):\n%s", len(wan), len(lan), len(esp), err,
			strings.Join(append(wan, lan...), "\n"))
	}

	// The timeline, as a person watching make demo wants it.
	var b strings.Builder
	fmt.Fprintf(&b, "\ntimeline (guest console; then the managers):\n")
	for _, m := range regexp.MustCompile(`ferry: phase (\S+) ok in (\S+)`).FindAllStringSubmatch(con, -1) {
		fmt.Fprintf(&b, "  %-12s %s\n", m[1], m[2])
	}
	shut := regexp.MustCompile(`(?m)^shutdown \S+ +clean +([0-9.]+) s`).FindStringSubmatch(show)
	how := "poweroff -f"
	if strings.Contains(con, "sysrq power off") {
		how = "the sysrq fallback (poweroff -f did not act)"
	}
	// Before image A runs only the lender sees the boot (its netboot's
	// DHCP, script and file fetches, recorded as pxe-* phases): lease
	// show has every phase with its start counted from the lease request.
	fmt.Fprintf(&b, "timeline from the lease request (lease show: the lender's netboot, then the agent's phases):\n")
	fmt.Fprint(&b, requestTimeline(show))
	refused := regexp.MustCompile(`ferry-root: check foreign-root ok (.*)`).FindStringSubmatch(con)
	fmt.Fprintf(&b, "  lease request -> borrower root ready: %.1f s; return -> powered off: %.2f s; whole run %.1f s\n",
		ready.Seconds(), off.Seconds(), time.Since(t0).Seconds())
	if shut != nil {
		fmt.Fprintf(&b, "  clean shutdown: keeper asked -> server left the gateway in %s s; guest powered off by itself through %s\n", shut[1], how)
	}
	fmt.Fprintf(&b, "  WAN: %d ESP-in-UDP packets of the lent server; 0 in clear on the WAN and on the lender LAN (the server's ICMP errors about IKE/ESP, not counted: %d)\n", len(esp), len(icmp))
	fmt.Fprintf(&b, "  ESP data plane: %s in A and in B's keeper (ferry.dataplane=%s)\n", want, c.Cfg.DataPlane)
	if refused != nil {
		fmt.Fprintf(&b, "  NFS: root exported to %s alone; the lent server %s\n", c.VIP, refused[1])
	}
	fmt.Fprintf(&b, "full chain: ok (lease %s, tunnel address %s)\n", c.Lease, c.VIP)
	fmt.Print(b.String())
}

// checkManagedConsole: every managed phase of A and B (the agent's own
// lists) ok on the console, none failed, B loaded by kexec_load, the root's checks passed
// (among them the stray root and the parent of all roots refused), A's
// address from the lender's DHCP pool kept by B, both tunnels on want.
func checkManagedConsole(c *Chain, con, want string, labRoot bool) {
	c.t.Helper()
	for _, img := range []string{"A", "B"} {
		for _, p := range agent.Phases(img, true) {
			if !strings.Contains(con, "ferry: phase "+p+" ok") {
				c.Fail("no 'phase %s ok' (image %s) on the console", p, img)
			}
		}
	}
	if m := regexp.MustCompile(`ferry: phase .* failed.*`).FindString(con); m != "" {
		c.Fail("a phase failed: %s", m)
	}
	// The lab boots through SeaBIOS without lockdown: B's bzImage goes in
	// by kexec_load as it is, not by kexec_file_load (kexec/bzplan.go), with
	// its initrd patched in memory (initrd.PatchInPlace), not in a file.
	if !strings.Contains(con, "method=kexec_load firmware=bios initrd=memory") {
		c.Fail("image B was not loaded by kexec_load on this BIOS machine: %q", regexp.MustCompile(`kexec loaded.*`).FindString(con))
	}
	if m := regexp.MustCompile(`ferry-root: check .* FAIL.*`).FindString(con); m != "" {
		c.Fail("the root's checks failed: %s", m)
	}
	for _, chk := range []string{"foreign-root", "roots-parent"} {
		if labRoot && !strings.Contains(con, "ferry-root: check "+chk+" ok") {
			c.Fail("check %s did not pass: %q", chk, regexp.MustCompile(`ferry-root: check `+chk+`.*`).FindString(con))
		}
	}
	pool := [2]netip.Addr{netip.MustParseAddr("10.50.0.100"), netip.MustParseAddr("10.50.0.150")}
	if a, err := netip.ParseAddr(c.ServerIP); err != nil || a.Less(pool[0]) || pool[1].Less(a) {
		c.Fail("image A's address %q is not from the lender's DHCP pool", c.ServerIP)
	}
	if !regexp.MustCompile(`ferry: address ` + regexp.QuoteMeta(c.ServerIP) + `/24 dev \S+ via ` + LenderIP + ` kept from A's dhcp lease`).MatchString(con) {
		c.Fail("image B did not keep A's address %s", c.ServerIP)
	}
	if !regexp.MustCompile(`ferry: tunnel up gateway=[0-9.]+ vip=[0-9.]+ via ` + want).MatchString(con) {
		c.Fail("tunnel-a did not run on %s", want)
	}
	if !regexp.MustCompile(`ferry: tunnel up gateway=[0-9.]+ vip=[0-9.]+ \(keeper\) via ` + want).MatchString(con) {
		c.Fail("tunnel-b (keeper) did not run on %s", want)
	}
}

// checkLeaseShow: the lender's record of the lease, as the borrower
// shows it, holds every phase of A and B ok (those before enrollment
// and before B's tunnel wait and go out with the first report after).
func checkLeaseShow(c *Chain) {
	c.t.Helper()
	var show string
	waitFor(30*time.Second, func() bool {
		show, _ = Run(c.Cfg.Ferry, "borrower", "lease", "show", "--dir", c.bdir, c.Lease)
		return strings.Contains(show, "switch-root")
	})
	want := []string{"kexec-armed"}
	for _, img := range []string{"A", "B"} {
		want = append(want, agent.Phases(img, true)...)
	}
	for _, p := range want {
		// A phase row: "  NAME  DURATION  ok  N bytes".
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(p) + ` +\S+ +ok `).MatchString(show) {
			c.Fail("lease show lacks phase %s ok:\n%s", p, show)
		}
	}
}

// checkCRL: after the return the lender's CRL lists the one-time
// certificate A enrolled with, the borrower relayed it to the gateway,
// and the gateway loaded it.
func checkCRL(c *Chain, con, relayed string) {
	c.t.Helper()
	m := regexp.MustCompile(`ferry: enrolled .*serial=([0-9a-f]+)`).FindAllStringSubmatch(con, -1)
	if m == nil {
		c.Fail("the console shows no enrollment serial")
	}
	serial, ok := new(big.Int).SetString(m[len(m)-1][1], 16)
	if !ok {
		c.Fail("enrollment serial %q is not hex", m[len(m)-1][1])
	}
	der := c.path("crl.der")
	if _, err := Run("ip", "netns", "exec", c.L.Name, "curl", "-sSk", "-m", "10", "-o", der, "https://"+LenderIP+":8443/v1/crl"); err != nil {
		c.Fail("no CRL from the lender: %v", err)
	}
	for _, f := range []struct{ what, path string }{{"the lender's CRL", der}, {"the CRL relayed to the gateway", relayed}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			c.Fail("%s: %v", f.what, err)
		}
		l, err := x509.ParseRevocationList(b)
		if err != nil {
			c.Fail("%s: %v", f.what, err)
		}
		found := false
		for _, e := range l.RevokedCertificateEntries {
			found = found || e.SerialNumber.Cmp(serial) == 0
		}
		if !found {
			c.Fail("%s lacks the one-time certificate (serial %x)", f.what, serial)
		}
	}
	re := regexp.MustCompile(`authz: CRL loaded.*revoked=[1-9]`)
	if !waitFor(10*time.Second, func() bool { b, _ := os.ReadFile(c.path("gateway.log")); return re.Match(b) }) {
		c.Fail("the gateway did not load the relayed CRL")
	}
}

var reShowPhase = regexp.MustCompile(`(?m)^  ([a-z0-9-]+) +(\S+) +(ok|failed.*?) +(\d+) bytes +at \+([0-9.]+) s$`)

// requestTimeline is lease show's phase rows ordered by their start
// from the lease request: "+  12.3 s  phase  duration  [bytes]".
func requestTimeline(show string) string {
	type row struct {
		at   float64
		line string
	}
	var rows []row
	for _, m := range reShowPhase.FindAllStringSubmatch(show, -1) {
		at, _ := strconv.ParseFloat(m[5], 64)
		bytes := ""
		if m[4] != "0" {
			bytes = m[4] + " bytes"
		}
		rows = append(rows, row{at, fmt.Sprintf("  +%6.1f s  %-18s %-12s %s\n", at, m[1], m[2], bytes)})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].at < rows[j].at })
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.line)
	}
	return b.String()
}

// TestRequestTimeline: lease show's phase rows, in start order, the
// lender's pxe-* steps first.
func TestRequestTimeline(t *testing.T) {
	show := "lease B1  state active  key k  lender lease L1  expires 2026-12-06T05:00:00Z\n" +
		"SERVER  MAC  PHASE  TUNNEL_ADDRESS  TUNNEL  SPKI_SHA256\n" +
		"s1      m    done   10.52.8.1       up      ab\n" +
		"  enroll        413ms     ok                  0 bytes        at +40.5 s\n" +
		"  pxe-dhcp      1ms       ok                  0 bytes        at +3.0 s\n" +
		"  fetch-b       4.0s      ok                  9000 bytes     at +42.0 s\n" +
		"  mount-root    1s        failed: no route    0 bytes        at +60.0 s\n" +
		"shutdown s1  clean  2.7 s  keeper\n"
	got := requestTimeline(show)
	want := "  +   3.0 s  pxe-dhcp           1ms          \n" +
		"  +  40.5 s  enroll             413ms        \n" +
		"  +  42.0 s  fetch-b            4.0s         9000 bytes\n" +
		"  +  60.0 s  mount-root         1s           \n"
	if got != want {
		t.Errorf("requestTimeline:\n%q\nwant\n%q", got, want)
	}
}

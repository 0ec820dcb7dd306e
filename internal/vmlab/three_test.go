package vmlab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestThreeServers is one lease of three lent servers at once through the
// real managers, gateway and nfs-ganesha (docs/LAB.md): the lender powers
// all three on, they PXE-boot, enroll and tunnel concurrently, each
// reaches its own root; then, from each, every other server's root is
// refused and nothing answers at another server's tunnel address; one
// return powers all three off cleanly and takes every export away.
// FERRY_THREE_MEM sets each guest's memory in MB (default 384, with a
// margin: 320 passed once, 256 panics in image A); FERRY_FULL_KEEP=1
// keeps the work directory.
func TestThreeServers(t *testing.T) {
	requireLab(t, "ganesha.nfsd", "tcpdump", "curl", "unshare", "nft")
	const n = 3
	mem := 384
	if v := os.Getenv("FERRY_THREE_MEM"); v != "" {
		var err error
		if mem, err = strconv.Atoi(v); err != nil || mem < 128 {
			t.Fatalf("FERRY_THREE_MEM=%q: want a size in MB >= 128", v)
		}
	}
	repo := Repo(t)
	ferry := labFerry(t, repo)
	t0 := time.Now()
	im := BuildImages(t, repo, ferry, filepath.Join(repo, "build", "full-lab"))
	t.Logf("images built in %s", time.Since(t0).Round(time.Second))
	dir := filepath.Join(im.Lab, fmt.Sprintf("three-%d", os.Getpid()))
	os.RemoveAll(dir)
	keepOnFailure(t, dir, "FERRY_FULL_KEEP")
	c := NewChain(t, ChainConfig{Ferry: ferry, Images: im, Dir: dir, StrayRoot: true, Servers: n, MemMB: mem, SMP: 1})
	// The borrower hands out the pool's first addresses to a fresh store
	// (asserted below); each root tries the others' (scripts/root-init.sh
	// check_cross).
	var vips []string
	for i := 1; i <= n; i++ {
		vips = append(vips, fmt.Sprintf("10.52.8.%d", i))
	}
	appendConf(t, im.Export, fmt.Sprintf("sibling_roots=%d\npeer_vips=%q\n", n, strings.Join(vips, " ")))

	t.Logf("borrower lease request for %d servers (consoles in %s)", n, dir)
	ready := c.Request()
	if got := slices.Sorted(slices.Values(c.VIPs)); !slices.Equal(got, vips) {
		c.Fail("tunnel addresses %v, want %v (one each, distinct)", c.VIPs, vips)
	}
	if s := slices.Compact(slices.Sorted(slices.Values(c.ServerIPs))); len(s) != n {
		c.Fail("servers' addresses %v are not %d distinct ones", c.ServerIPs, n)
	}
	for i, vm := range c.VMs {
		con := vm.Console.Text()
		if m := regexp.MustCompile(`ferry: phase .* failed.*|ferry-root: check .* FAIL.*`).FindString(con); m != "" {
			c.Fail("server %d: %s", i, m)
		}
		// auto picks kernel ESP on the lab's kernel: the pool's guard
		// below is then XFRM block policies (the namespace tests cover
		// the user-space plane's prohibit routes).
		if !strings.Contains(con, "(keeper) via kernel ESP") {
			c.Fail("server %d: the keeper's tunnel is not on kernel ESP", i)
		}
		for _, chk := range []string{"foreign-root", "roots-parent", "keeper-status", "root-fstype"} {
			if !strings.Contains(con, "ferry-root: check "+chk+" ok") {
				c.Fail("server %d: check %s did not pass", i, chk)
			}
		}
	}
	exports, _ := os.ReadFile(c.path("ferry-exports.conf"))
	if strings.Count(string(exports), "EXPORT {") != n {
		c.Fail("want %d exports: %s", n, exports)
	}
	for _, v := range vips {
		if strings.Count(string(exports), "Clients = "+v+";") != 1 {
			c.Fail("want exactly one export to %s: %s", v, exports)
		}
	}

	// Every server up and exported: now each tries the others.
	for i := 0; i < n; i++ {
		p := filepath.Join(c.bdir, "roots", fmt.Sprintf("%s-%d", c.Lease, i), "cross-check")
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			c.Fail("%v", err)
		}
	}
	for i, vm := range c.VMs {
		if _, err := vm.Console.Expect(regexp.MustCompile(`ferry-root: cross-checks done`), 4*time.Minute, vm.Done()); err != nil {
			c.Fail("server %d did not finish its cross-checks: %v", i, err)
		}
		con := vm.Console.Text()
		if m := regexp.MustCompile(`ferry-root: check (sibling-root|peer-address) FAIL.*`).FindString(con); m != "" {
			c.Fail("server %d: %s", i, m)
		}
		if s, p := strings.Count(con, "check sibling-root ok"), strings.Count(con, "check peer-address ok"); s != n-1 || p != 2*(n-1) {
			c.Fail("server %d: %d sibling roots refused (want %d), %d peer ports unreachable (want %d)", i, s, n-1, p, 2*(n-1))
		}
	}

	tret := time.Now()
	show, err := c.Return(context.Background())
	if err != nil {
		c.Fail("lease return: %v\n%s", err, show)
	}
	off := time.Since(tret)
	if exports, _ := os.ReadFile(c.path("ferry-exports.conf")); strings.Contains(string(exports), "EXPORT {") {
		c.Fail("exports left after the return: %s", exports)
	}
	// A server's packets to another's tunnel address (the cross-checks'
	// probes) are not in its tunnel (the gateway narrows it to the
	// borrower's subnets), and every server guards the tunnel pool: they
	// are refused on the server, so none may appear in clear, neither on
	// the WAN nor on the lender LAN (docs/SECURITY.md, hole 9).
	wan, lan, err := c.Leaks()
	var probes []string
	for _, cp := range []*Capture{c.LAN, c.WAN} {
		p, perr := cp.Packets("dst net " + TunnelPool)
		probes = append(probes, p...)
		if err == nil {
			err = perr
		}
	}
	if err != nil || len(probes) > 0 || len(wan) > 0 || len(lan) > 0 {
		c.Fail("in clear: %d packets to the tunnel pool %s; of the servers' on the WAN %d, on the lender LAN %d (%v):\n%s",
			len(probes), TunnelPool, len(wan), len(lan), err, strings.Join(append(append(probes, wan...), lan...), "\n"))
	}
	fmt.Printf("three servers: lease request -> all %d roots ready %.1f s; return -> all powered off %.1f s; whole run %.1f s (%d MB, 1 vCPU each)\n",
		n, ready.Seconds(), off.Seconds(), time.Since(t0).Seconds(), mem)
	fmt.Printf("  tunnel addresses %v, servers %v; each refused %d sibling roots and was refused %d probes to other servers' addresses; %d packets in clear to the pool\n",
		c.VIPs, c.ServerIPs, n-1, 2*(n-1), len(probes))
	fmt.Printf("three servers: ok (lease %s)\n", c.Lease)
}

// appendConf adds lines to the root template's /etc/ferry-lab.conf.
func appendConf(t *testing.T, export, lines string) {
	f, err := os.OpenFile(filepath.Join(export, "etc", "ferry-lab.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(lines)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

package vmlab

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// plan is one flavour of the soak (FERRY_SOAK=short, long or keeper).
type plan struct {
	planes []string // ESP data planes, in turn
	timers Timers   // both ends'
	// minChild and minIKE rekeys, counted on both ends together
	// (Chain.Rekeys), waited for up to rekeyWait before the faults and
	// judged over the whole lease.
	minChild, minIKE int
	bothSides        bool // each end must have started rekeys (CHILD_SA or IKE SA)
	rekeyWait        time.Duration
	bigFile          int
	copyPause        time.Duration
	faults           []fault
}

// fault is one thing done to the running chain; the root must not stay
// frozen longer than it lasts plus slack.
type fault struct {
	name string
	hold time.Duration // how long the fault stays before it is undone
	do   func(c *Chain) error
	undo func(c *Chain) error
	// settle is how long the root must go on writing after the undo
	// (default 20 s); check, when set, asserts what the keeper's status
	// shows afterwards.
	settle time.Duration
	check  func(c *Chain) error
}

const slack = 5 * time.Second

func wanOutage(d time.Duration) fault {
	return fault{name: fmt.Sprintf("WAN outage %s", d), hold: d,
		do: (*Chain).WANDown, undo: (*Chain).WANUp}
}

var gatewayKill = fault{name: "gateway kill -9, restart",
	do:   func(c *Chain) error { c.Gateway.Kill9(); return nil },
	undo: func(c *Chain) error { c.StartGateway(); return nil }}

var managersKill = fault{name: "managers kill -9, restart",
	do:   func(c *Chain) error { c.Lender.Kill9(); c.Borrower.Kill9(); return nil },
	undo: func(c *Chain) error { c.StartLender(); c.StartBorrower(); return nil }}

// keeperCrash kills the keeper proper with SIGABRT (root-init.sh, asked
// through /soak/kill-keeper): a Go crash, as a fatal error would end it.
// Nothing is undone: its supervisor must restart it where it was, inside
// the root, with the key it holds in RAM. The root must still write 90 s
// on, after the SAs the dead keeper left (the kernel's states carry ESP
// for a while) would have ended (CHILD_SA lifetime 60 s, DPD 10 s).
var keeperCrash = fault{name: "keeper child SIGABRT", settle: 90 * time.Second,
	do: func(c *Chain) error {
		dir := c.RootFile("soak")
		if dir == "" {
			return fmt.Errorf("no soak directory in the root")
		}
		if err := os.WriteFile(filepath.Join(dir, "kill-keeper"), nil, 0o644); err != nil {
			return err
		}
		if _, err := c.VM.Console.Expect(reKilled, time.Minute, c.VM.Done()); err != nil {
			return fmt.Errorf("the root did not kill the keeper: %w", err)
		}
		return nil
	},
	undo:  func(*Chain) error { return nil },
	check: keeperRestarted,
}

var reKilled = regexp.MustCompile(`ferry-root: keeper child pid \d+ killed with SIGABRT`)

// keeperRestarted: the keeper's status, read through the tunnel, shows
// the tunnel up and a restart after SIGABRT (the plans crash it once).
func keeperRestarted(c *Chain) error {
	st, err := c.KeeperStatus()
	if err != nil {
		return fmt.Errorf("keeper status through the tunnel: %w", err)
	}
	n, _ := st["restarts"].(float64)
	why, _ := st["last_restart_reason"].(string)
	if n < 1 || !strings.Contains(why, "SIGABRT") {
		return fmt.Errorf("keeper status: restarts %v, last_restart_reason %q: want a restart after SIGABRT", st["restarts"], why)
	}
	if tun, _ := st["tunnel"].(map[string]any); tun["up"] != true {
		return fmt.Errorf("keeper status: tunnel %v, want up", tun)
	}
	return nil
}

func freeze(d time.Duration) fault {
	return fault{name: fmt.Sprintf("guest frozen %s", d), hold: d,
		do:   func(c *Chain) error { return c.VM.Freeze(context.Background()) },
		undo: func(c *Chain) error { return c.VM.Thaw(context.Background()) }}
}

var plans = map[string]plan{
	// The long lease of the issue: both data planes, every fault.
	"long": {planes: []string{"kernel", "user"},
		timers:   Timers{DPD: 10 * time.Second, IKELifetime: 150 * time.Second, ChildLifetime: 60 * time.Second, RekeyMargin: 15 * time.Second},
		minChild: 5, minIKE: 2, bothSides: true, rekeyWait: 5 * time.Minute, bigFile: 50 << 20, copyPause: 20 * time.Second,
		faults: []fault{wanOutage(30 * time.Second), wanOutage(150 * time.Second), gatewayKill, managersKill, freeze(90 * time.Second)}},
	// What make e2e can afford: kernel ESP, two CHILD rekeys, three faults.
	"short": {planes: []string{"kernel"},
		timers:   Timers{DPD: 10 * time.Second, IKELifetime: 180 * time.Second, ChildLifetime: 60 * time.Second, RekeyMargin: 10 * time.Second},
		minChild: 2, rekeyWait: 4 * time.Minute, bigFile: 20 << 20, copyPause: 30 * time.Second,
		faults: []fault{wanOutage(30 * time.Second), gatewayKill, freeze(30 * time.Second)}},
	// The keeper's crash (FERRY_SOAK=keeper, make soak-keeper, about 4.5
	// minutes): no rekeys waited for, no copies.
	"keeper": {planes: []string{"kernel", "user"},
		timers: Timers{DPD: 10 * time.Second, IKELifetime: 180 * time.Second, ChildLifetime: 60 * time.Second, RekeyMargin: 10 * time.Second},
		faults: []fault{keeperCrash}},
}

// TestSoak is the long-lease test (docs/LAB.md): the whole chain under
// QEMU with a workload on the NFS root, rekeys, then faults in turn, then
// the return. FERRY_SOAK=short|long|keeper runs it (root, QEMU, nfs-ganesha,
// tcpdump, nft, minutes of CPU); FERRY_BIN names the ferry binary (else it
// is built), FERRY_CACHE the kernel cache, FERRY_SOAK_KEEP=1 keeps the
// work directory after a pass. Run it under flock /tmp/ferry-qemu.lock.
func TestSoak(t *testing.T) {
	mode := os.Getenv("FERRY_SOAK")
	if mode == "" {
		t.Skip("the lab soak runs with FERRY_SOAK=short, long or keeper (make soak): it needs root, QEMU, nfs-ganesha and minutes")
	}
	p, ok := plans[mode]
	if !ok {
		t.Fatalf("FERRY_SOAK=%q: want short, long or keeper", mode)
	}
	if v := os.Getenv("FERRY_SOAK_PLANE"); v != "" {
		p.planes = []string{v} // one data plane of the plan's: kernel or user
	}
	NoSurvivors(t) // first, so that its check runs after every other cleanup
	for _, c := range []string{"qemu-system-x86_64", "ganesha.nfsd", "tcpdump", "nft", "curl", "busybox", "cpio", "zstd"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("missing %s (scripts/ci-deps.sh)", c)
		}
	}
	repo := Repo(t)
	ferry := labFerry(t, repo)
	lab := filepath.Join(repo, "build", "soak-lab")
	t0 := time.Now()
	im := BuildImages(t, repo, ferry, lab)
	t.Logf("images built in %s (%s)", time.Since(t0).Round(time.Second), lab)
	var tables []string
	for _, plane := range p.planes {
		t.Run(plane, func(t *testing.T) {
			tables = append(tables, soak(t, p, plane, ferry, im))
		})
	}
	fmt.Printf("\nsoak %s, whole run %s\n%s", mode, time.Since(t0).Round(time.Second), strings.Join(tables, "\n"))
}

// row is one line of the per-fault table.
type row struct {
	fault             string
	lasted, frozen    time.Duration
	recovered         time.Duration
	resumed           bool
	wanLeaks, lanLeak int
	vip               string
	reconnects        string // the keeper's count after the fault (status "reconnects")
}

// failed is the fault's verdict: the root never resumed, or stayed frozen
// longer than the fault plus slack.
func (r row) failed() bool { return !r.resumed || r.frozen > r.lasted+slack }

func soak(t *testing.T, p plan, plane, ferry string, im Images) (table string) {
	dir := filepath.Join(im.Lab, fmt.Sprintf("run-%s-%d", plane, os.Getpid()))
	os.RemoveAll(dir)
	// Registered first, so it runs after every process has ended.
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("FERRY_SOAK_KEEP") == "" {
			os.RemoveAll(dir)
		}
	})
	t0 := time.Now()
	c := NewChain(t, ChainConfig{Ferry: ferry, Images: im, Dir: dir, DataPlane: plane, Timers: p.timers,
		Soak: true, BigFile: p.bigFile, CopyPause: p.copyPause})
	ctx, cancel := context.WithCancel(context.Background())
	rec := &Recorder{Path: func() string { return c.RootFile("soak/records") }}
	done := make(chan struct{})
	go func() { rec.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	ready := c.Request()
	t.Logf("%s: lease %s, server %s, tunnel address %s; request -> root ready %s", plane, c.Lease, c.ServerIP, c.VIP, ready.Round(time.Second))
	want := map[string]string{"kernel": "kernel ESP", "user": "user-space ESP"}[plane]
	if !strings.Contains(c.VM.Console.Text(), "(keeper) via "+want) {
		c.Fail("the keeper's tunnel is not on %s", want)
	}
	if !waitFor(90*time.Second, func() bool { return len(rec.Records()) >= 4 }) {
		c.Fail("the root's workload wrote no records to %q", c.RootFile("soak/records"))
	}

	// Rekeys with the workload running and no fault yet (they go on
	// through the faults; the counts are judged before the return).
	tr := time.Now()
	rekeys := func() (int, int) { gc, gi, sc, si := c.Rekeys(); return gc + sc, gi + si }
	waitFor(p.rekeyWait, func() bool { ch, ik := rekeys(); return ch >= p.minChild && ik >= p.minIKE })
	gc, gi, sc, si := c.Rekeys()
	// The first row: the root's longest stall with rekeys and no fault.
	rows := []row{{fault: "none (rekeys, copies)", lasted: time.Since(tr), resumed: true,
		frozen: LongestGap(rec.Records(), tr, time.Now())}}
	rows[0].vip, rows[0].reconnects = tunnelStatus(c)
	// The faults are measured on the records alone: a 50 MB copy holds
	// the NFS client for seconds (the first row shows how long).
	if p.bigFile > 0 {
		if err := c.StopCopies(5 * time.Minute); err != nil {
			t.Errorf("%s: %v", plane, err)
		}
	}
	t.Logf("%s: rekeys in %s before the faults: CHILD_SA gateway %d, server %d; IKE SA gateway %d, server %d", plane,
		time.Since(tr).Round(time.Second), gc, sc, gi, si)

	wanBase, lanBase, _ := c.Leaks()
	for _, f := range p.faults {
		r := row{fault: f.name}
		from := time.Now()
		if err := f.do(c); err != nil {
			c.Fail("%s: %v", f.name, err)
		}
		time.Sleep(f.hold)
		if err := f.undo(c); err != nil {
			c.Fail("undo %s: %v", f.name, err)
		}
		to := time.Now()
		r.lasted = to.Sub(from)
		// Settle: records flowing again, then 20 s more to catch a second stall.
		r.resumed = waitFor(3*time.Minute, func() bool {
			rs := rec.Records()
			return len(rs) > 0 && rs[len(rs)-1].Seen.After(to)
		})
		settle := cmp.Or(f.settle, 20*time.Second)
		time.Sleep(settle)
		// A root that froze only later (the tunnel's end came after the
		// fault) must write again too.
		end := time.Now()
		r.resumed = r.resumed && waitFor(3*time.Minute, func() bool {
			rs := rec.Records()
			return len(rs) > 0 && rs[len(rs)-1].Seen.After(end.Add(-2*time.Second))
		})
		r.frozen, r.recovered, _ = Frozen(rec.Records(), from, to, settle)
		if rs := rec.Records(); !r.resumed && len(rs) > 0 {
			r.frozen = time.Since(rs[len(rs)-1].Seen) // and still frozen
		}
		r.vip, r.reconnects = tunnelStatus(c)
		if f.check != nil {
			if err := f.check(c); err != nil {
				t.Errorf("%s: %s: %v", plane, f.name, err)
			}
		}
		wan, lan, err := c.Leaks()
		if err != nil {
			t.Errorf("%s: reading the captures: %v", f.name, err)
		}
		r.wanLeaks, r.lanLeak = len(wan)-len(wanBase), len(lan)-len(lanBase)
		for _, l := range append(wan[len(wanBase):], lan[len(lanBase):]...) {
			if len(l) > 0 {
				t.Logf("%s: in clear: %s", f.name, l)
			}
		}
		wanBase, lanBase = wan, lan
		rows = append(rows, r)
		t.Logf("%s: %s: %s to %s (host time)", plane, f.name, from.UTC().Format("15:04:05.0"), to.UTC().Format("15:04:05.0"))
		t.Logf("%s: %s: lasted %s, root frozen %s, first record %s after the restore, tunnel address %s, leaks WAN %d LAN %d",
			plane, f.name, r.lasted.Round(100*time.Millisecond), r.frozen.Round(100*time.Millisecond),
			r.recovered.Round(100*time.Millisecond), r.vip, r.wanLeaks, r.lanLeak)
		switch {
		case !r.resumed:
			t.Errorf("%s: %s: the root wrote no record within 3 min of the restore", plane, f.name)
		case r.failed():
			t.Errorf("%s: %s: the root was frozen %s, longer than the fault (%s) plus %s", plane, f.name,
				r.frozen.Round(100*time.Millisecond), r.lasted.Round(100*time.Millisecond), slack)
		}
		if r.vip != c.VIP {
			t.Errorf("%s: %s: tunnel address %s, want %s throughout", plane, f.name, r.vip, c.VIP)
		}
		if r.wanLeaks != 0 || r.lanLeak != 0 {
			t.Errorf("%s: %s: %d packets of the server in clear on the WAN, %d on the lender LAN", plane, f.name, r.wanLeaks, r.lanLeak)
		}
	}

	// Every tunnel the keeper reported, across reconnects, on one address.
	for _, m := range c.VM.Console.All(reVIP) {
		if m[1] != c.VIP {
			t.Errorf("%s: the keeper reported the tunnel up on %s, want %s throughout", plane, m[1], c.VIP)
		}
	}
	copies := c.checkCopies(t, plane)
	gc, gi, sc, si = c.Rekeys()
	if ch, ik := rekeys(); ch < p.minChild || ik < p.minIKE {
		t.Errorf("%s: %d CHILD_SA and %d IKE SA rekeys over the lease, want at least %d and %d", plane, ch, ik, p.minChild, p.minIKE)
	}
	// Both ends run the same timers, and each rekeys at a random point
	// between 2 and 1 margins before a lifetime ends (docs/CONTRACT.md,
	// "Timers"): which end starts a given rekey is chance, so each end
	// must have started some, not some of each kind.
	if p.bothSides && (gc+gi == 0 || sc+si == 0) {
		t.Errorf("%s: rekeys must come from both sides: CHILD_SA gateway %d, server %d, IKE SA gateway %d, server %d", plane, gc, sc, gi, si)
	}

	// The records, before the return retires the root.
	recs := rec.Records()
	missing, dup := Sequence(recs)
	if len(recs) == 0 || len(missing) > 0 || len(dup) > 0 || len(rec.Bad()) > 0 {
		t.Errorf("%s: %d records; lost %v, duplicated %v, unreadable %q", plane, len(recs), short(missing), short(dup), rec.Bad())
	}

	tret := time.Now()
	show, err := c.Return(context.Background())
	if err != nil {
		t.Errorf("%s: lease return: %v\n%s", plane, err, show)
	}
	retDur := time.Since(tret)
	wan, lan, err := c.Leaks()
	if err != nil || len(wan) > 0 || len(lan) > 0 {
		t.Errorf("%s: in clear over the whole lease: WAN %d, lender LAN %d (%v)", plane, len(wan), len(lan), err)
	}

	for _, l := range append(wan, lan...) {
		t.Logf("%s: in clear: %s", plane, l)
	}
	icmp, _ := c.ICMPAboutIKE()
	if err := WriteTSV(filepath.Join(dir, "records.tsv"), recs); err != nil {
		t.Log(err)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%s (lease %s, tunnel address %s): ready in %s, %d records (lost %d, duplicated %d), %d copies of %d MB checked, return %s, whole %s\n",
		want, c.Lease, c.VIP, ready.Round(time.Second), len(recs), len(missing), len(dup), copies, p.bigFile>>20, retDur.Round(100*time.Millisecond), time.Since(t0).Round(time.Second))
	fmt.Fprintf(&b, "  rekeys over the lease: CHILD_SA gateway %d server %d, IKE SA gateway %d server %d\n", gc, sc, gi, si)
	fmt.Fprintf(&b, "  in clear over the lease: WAN %d, lender LAN %d; the server's ICMP errors about IKE/ESP packets (not counted): %d\n", len(wan), len(lan), len(icmp))
	fmt.Fprintf(&b, "  %-28s %9s %11s %21s %10s %-14s %10s\n", "fault", "lasted", "frozen for", "recovered after undo", "leaks W/L", "tunnel address", "reconnects")
	for i, r := range rows {
		rec := r.recovered.Round(100 * time.Millisecond).String()
		if i == 0 {
			rec = "-"
		}
		if !r.resumed {
			rec = "never"
		}
		verdict := "ok"
		if i > 0 && r.failed() {
			verdict = "FROZEN TOO LONG"
		}
		fmt.Fprintf(&b, "  %-28s %9s %11s %21s %5d/%-4d %-14s %10s %s\n", r.fault, r.lasted.Round(100*time.Millisecond),
			r.frozen.Round(100*time.Millisecond), rec, r.wanLeaks, r.lanLeak, r.vip, r.reconnects, verdict)
	}
	t.Log("\n" + b.String())
	os.WriteFile(filepath.Join(dir, "soak-table.txt"), []byte(b.String()), 0o644)
	return b.String()
}

var reCopy = regexp.MustCompile(`^(\d+) ([0-9.]+) ([0-9a-f]{64})$`)

// checkCopies reads /soak/copies (the guest's digest of each copy, read
// back from the server) and big.out itself; it returns how many copies
// were checked.
func (c *Chain) checkCopies(t *testing.T, plane string) int {
	if c.Cfg.BigFile == 0 {
		return 0
	}
	b, err := os.ReadFile(c.RootFile("soak/copies"))
	if err != nil {
		t.Errorf("%s: no copies of the big file: %v", plane, err)
		return 0
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		m := reCopy.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("%s: copies: unreadable line %.80q", plane, l)
			continue
		}
		n++
		if m[3] != c.BigSHA256 {
			t.Errorf("%s: copy %s (uptime %s): the guest read back sha256 %s, want %s", plane, m[1], m[2], m[3], c.BigSHA256)
		}
	}
	if n == 0 {
		t.Errorf("%s: no copy of the big file finished", plane)
	}
	if sum, err := FileSHA256(c.RootFile("soak/big.out")); err != nil || sum != c.BigSHA256 {
		t.Errorf("%s: big.out on the server: sha256 %s (%v), want %s", plane, sum, err, c.BigSHA256)
	}
	return n
}

func short(v []int) string {
	if len(v) > 10 {
		return strconv.Itoa(len(v)) + " numbers from " + strconv.Itoa(v[0])
	}
	return fmt.Sprint(v)
}

// tunnelStatus is the keeper's tunnel address and reconnect count, read
// through the tunnel.
func tunnelStatus(c *Chain) (vip, reconnects string) {
	st, err := c.KeeperStatus()
	if err != nil {
		return "no answer", "?"
	}
	tun, _ := st["tunnel"].(map[string]any)
	vip, _ = tun["virtual_ip"].(string)
	reconnects = "?"
	if n, ok := tun["reconnects"].(float64); ok {
		reconnects = strconv.Itoa(int(n))
	}
	return vip, reconnects
}

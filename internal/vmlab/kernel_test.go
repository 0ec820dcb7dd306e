package vmlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/agent"
	"ferry/internal/netnstest"
)

// The kernel path's lab (docs/LAB.md): one namespace, the host side of
// the guest's tap is the "borrower" with nfs-ganesha and busybox httpd.
const (
	kernHostIP  = "10.9.0.1"
	kernGuestIP = "10.9.0.2"
	kernMAC     = "52:54:00:fe:77:02"
)

// The checks the NFS root's /sbin/init (scripts/root-init.sh) must report ok.
var kernRootChecks = []string{"root-fstype", "run-tmpfs", "state-tmpfs", "local-disks-ro", "keeper", "keeper-status", "keeper-alive-at-end"}

// TestKernelPath is the kernel path in lab mode, A -> kexec -> B -> NFS
// root, once per NFS version of the root (FERRY_NFS_VERSIONS, default
// "4.1 3") on one image build: image A made by ferry boots with
// ferry.source= pointing at the lab's transfer.json; once the root says
// ready the host reads its page and the keeper's /status, asks it to power
// off, and the console is judged. FERRY_LAB=1 runs it (make e2e;
// make demo-kernel streams the console with FERRY_STREAM=1);
// FERRY_NFS_OPTIONS goes to root.options, FERRY_KERNEL_KEEP=1 keeps the
// run directories after a pass.
func TestKernelPath(t *testing.T) {
	requireLab(t, "ganesha.nfsd", "curl", "unshare", "rpcbind", "rpcinfo")
	repo := Repo(t)
	ferry := labFerry(t, repo)
	t0 := time.Now()
	im := BuildImages(t, repo, ferry, filepath.Join(repo, "build", "lab"))
	t.Logf("images built in %s", time.Since(t0).Round(time.Second))
	patchCheck(t, ferry, im)
	versions := strings.Fields(os.Getenv("FERRY_NFS_VERSIONS"))
	if len(versions) == 0 {
		versions = []string{"4.1", "3"}
	}
	timelines := map[string][]event{}
	for _, v := range versions {
		t.Run("nfs"+v, func(t *testing.T) { timelines[v] = kernelRun(t, repo, ferry, im, v) })
	}
	printTimelines(versions, timelines)
}

// patchCheck redoes on the host, with the same binary, what A does to
// initrd(B) in RAM: the original bytes must be an untouched prefix of the
// patched image, and its /init still there with the recorded sha256.
func patchCheck(t *testing.T, ferry string, im Images) {
	t.Helper()
	d := filepath.Join(im.Lab, "work", "patch-check")
	os.RemoveAll(d)
	if err := os.MkdirAll(filepath.Join(d, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d, "probe"), []byte("e2e probe\n"), 0o644)
	patched := filepath.Join(d, "patched.img")
	if out, err := Run(ferry, "initrd", "patch", im.InitrdB, "-o", patched, "--add", filepath.Join(d, "probe")+":/ferry/state/probe"); err != nil {
		t.Fatalf("ferry initrd patch initrd-b.img: %v %s", err, out)
	}
	orig, _ := os.ReadFile(im.InitrdB)
	got, _ := os.ReadFile(patched)
	if len(orig) == 0 || len(got) <= len(orig) || string(got[:len(orig)]) != string(orig) {
		t.Errorf("patched initrd(B) does not keep the original %d bytes as its prefix", len(orig))
	}
	ls, err := Run(ferry, "initrd", "ls", patched)
	if err != nil || !regexp.MustCompile(`(?m)^1 +zstd .* init$`).MatchString(ls) || !strings.Contains(ls, "ferry/state/probe") {
		t.Errorf("ferry initrd ls of the patched image: want /init in the zstd segment and the probe in the appended one (%v):\n%s", err, ls)
	}
	want, _ := os.ReadFile(filepath.Join(im.Lab, "initrd-b-init.sha256"))
	if out, err := Run(ferry, "initrd", "extract", patched, filepath.Join(d, "x")); err != nil {
		t.Errorf("ferry initrd extract: %v %s", err, out)
	} else if sum, _ := FileSHA256(filepath.Join(d, "x", "init")); sum != strings.TrimSpace(string(want)) {
		t.Errorf("/init of the patched image: sha256 %s, want %s", sum, want)
	}
}

// event is one ferry line of the console with the host time it showed.
type event struct {
	at   time.Duration
	line string
}

var reEvent = regexp.MustCompile(`(ferry(-root)?|initrd-b): .*|Kernel panic.*`)

func kernelRun(t *testing.T, repo, ferry string, im Images, version string) []event {
	fstype := "nfs4"
	if version == "3" {
		fstype = "nfs"
	}
	dir := filepath.Join(im.Lab, fmt.Sprintf("run-nfs%s-%d", version, os.Getpid()))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	keepOnFailure(t, dir, "FERRY_KERNEL_KEEP")
	env := append(os.Environ(), "FERRY_LAB_DIR="+im.Lab)
	// The variant: transfer.json's root.nfs_version and the root's
	// expectations (lib.sh write_variant, as build-images.sh writes them).
	runScript(t, env, filepath.Join(dir, "variant.log"), "bash", "-c", `. "$1/scripts/lib.sh" && write_variant "$2" "$3"`,
		"bash", repo, version, os.Getenv("FERRY_NFS_OPTIONS"))
	os.Remove(filepath.Join(im.Export, "poweroff-request"))
	ns := kernelLab(t, im, dir, version)
	disk := filepath.Join(dir, "disk.raw")
	if out, err := Run("cp", "--sparse=always", im.Disk, disk); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	diskBefore, _ := FileSHA256(disk)
	marker, _ := os.ReadFile(filepath.Join(im.Lab, "export-marker"))

	vm := QEMU{Name: "ferry-lent-server", Dir: dir, NetNS: ns.Name, Tap: "tap0", MAC: kernMAC, Disk: disk,
		Kernel: im.Vmlinuz, Initrd: filepath.Join(im.Lab, "initrd-a.img"), Timeout: 15 * time.Minute,
		Append: "console=ttyS0 quiet ferry.source=http://" + kernHostIP + ":8080/transfer.json ip=" + kernGuestIP + ":::255.255.255.0:ferry-a:eth0:off"}.Start(t)
	var mu sync.Mutex
	var events []event
	stream := os.Getenv("FERRY_STREAM") == "1"
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() {
		vm.Console.Follow(ctx, time.Now(), func(at time.Duration, l string) {
			if m := reEvent.FindString(l); m != "" {
				mu.Lock()
				events = append(events, event{at, m})
				mu.Unlock()
				fmt.Printf("[host %6.1fs] %s\n", at.Seconds(), m)
			} else if stream {
				fmt.Printf("             %s\n", l)
			}
		})
		close(followed)
	}()
	stopFollow := func() { cancel(); <-followed }
	t.Cleanup(stopFollow)

	in := func(args ...string) (string, error) {
		return Run(append([]string{"ip", "netns", "exec", ns.Name}, args...)...)
	}
	_, err := vm.Console.Expect(regexp.MustCompile(`ferry-root: ready|ferry: .*failed|Kernel panic`), 10*time.Minute, vm.Done())
	con := vm.Console.Text()
	if err != nil || !strings.Contains(con, "ferry-root: ready") {
		t.Errorf("no 'ferry-root: ready' (%v): %s", err, regexp.MustCompile(`ferry: .*failed.*|Kernel panic.*`).FindString(con))
	}
	trace := ""
	if m := regexp.MustCompile(`ferry: kexec armed trace=(\S+)`).FindStringSubmatch(con); m != nil {
		trace = m[1]
	}
	if strings.Contains(con, "ferry-root: ready") && vm.Running() {
		curl := []string{"curl", "-fsS", "--max-time", "10", "--retry", "3", "--retry-all-errors"}
		page, err := in(append(curl, "http://"+kernGuestIP+"/index.html")...)
		if err != nil || !strings.Contains(page, strings.TrimSpace(string(marker))) {
			t.Errorf("http://%s/index.html lacks the export's marker %s (%v): %.200s", kernGuestIP, marker, err, page)
		}
		status, err := in(append(curl, "http://"+kernGuestIP+":7070/status")...)
		os.WriteFile(filepath.Join(dir, "keeper-status.json"), []byte(status), 0o644)
		if err != nil || !regexp.MustCompile(`"root_fstype": *"`+fstype+`"`).MatchString(status) {
			t.Errorf("keeper /status: want root_fstype %s (%v): %.300s", fstype, err, status)
		}
		if trace == "" || !regexp.MustCompile(`"trace": *"?`+regexp.QuoteMeta(trace)+`"?`).MatchString(status) {
			t.Errorf("keeper /status trace is not A's %q: %.300s", trace, status)
		}
		os.WriteFile(filepath.Join(im.Export, "poweroff-request"), []byte("e2e "+time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
	}
	if !vm.Wait(3 * time.Minute) {
		t.Errorf("VM still running 180 s after the poweroff request: killed")
		vm.End()
	} else if err := vm.Err(); err != nil {
		t.Errorf("QEMU exited with %v (124 = its timeout)", err)
	}
	stopFollow()
	con = vm.Console.Text()
	mu.Lock()
	evs := append([]event(nil), events...)
	mu.Unlock()
	judgeKernelPath(t, con, evs, fstype)
	if out, err := runIn(env, filepath.Join(repo, "scripts", "check-initrd-b.sh"), im.InitrdB); err != nil {
		t.Errorf("initrd-b.img as served: %v\n%s", err, out)
	}
	if after, _ := FileSHA256(disk); after != diskBefore || after == "" {
		t.Errorf("the local disk changed: sha256 %s -> %s", diskBefore, after)
	}
	if t.Failed() {
		t.Logf("console (tail):\n%s", vm.Console.Tail(3000))
	}
	t.Logf("nfs %s: %s (trace=%s, files in %s)", version, map[bool]string{false: "PASS", true: "FAIL"}[t.Failed()], trace, dir)
	return evs
}

// judgeKernelPath: every phase the agent runs in lab mode shows ok, A's
// before `kexec armed` and B's after, in the agent's order; nothing
// failed or panicked; the root's checks passed; B's own /init never ran.
func judgeKernelPath(t *testing.T, con string, evs []event, fstype string) {
	t.Helper()
	armed := len(evs)
	for i, e := range evs {
		if strings.HasPrefix(e.line, "ferry: kexec armed") {
			armed = i
			break
		}
	}
	if armed == len(evs) {
		t.Errorf("no 'ferry: kexec armed'")
	}
	for _, side := range []struct {
		image    string
		from, to int
	}{{"A", 0, armed}, {"B", armed + 1, len(evs)}} {
		last, order := -1, ""
		for _, p := range agent.Phases(side.image, false) {
			at := -1
			for i := side.from; i < side.to && i < len(evs); i++ {
				if strings.HasPrefix(evs[i].line, "ferry: phase "+p+" ok") {
					at = i
					break
				}
			}
			if at < 0 {
				t.Errorf("%s phase %s: no 'ferry: phase %s ok' %s kexec armed", side.image, p, p, map[string]string{"A": "before", "B": "after"}[side.image])
				continue
			}
			if at < last {
				order += " " + p
			}
			last = at
		}
		if order != "" {
			t.Errorf("%s phases out of the agent's order at:%s", side.image, order)
		}
	}
	for i := 0; i < armed && i < len(evs); i++ {
		if strings.HasPrefix(evs[i].line, "ferry: phase boot-b") {
			t.Errorf("a B phase shows before kexec armed")
		}
	}
	for _, e := range evs {
		if regexp.MustCompile(`^ferry: .*failed`).MatchString(e.line) {
			t.Errorf("failure: %s", e.line)
		}
	}
	if m := regexp.MustCompile(`Kernel panic.*`).FindString(con); m != "" {
		t.Errorf("kernel panic: %s", m)
	}
	for _, c := range kernRootChecks {
		m := regexp.MustCompile(`ferry-root: check ` + c + ` (ok|FAIL).*`).FindStringSubmatch(con)
		switch {
		case m == nil:
			t.Errorf("root: no 'ferry-root: check %s' line", c)
		case m[1] != "ok":
			t.Errorf("root: %s", m[0])
		}
	}
	for _, m := range regexp.MustCompile(`ferry-root: check \S+ FAIL.*`).FindAllString(con, -1) {
		t.Errorf("root: %s", m)
	}
	if strings.Contains(con, "initrd-b: original /init ran") {
		t.Errorf("initrd(B)'s own /init ran (rdinit= not honoured)")
	}
	if trouble := kernelTrouble(con); len(trouble) > 0 {
		t.Errorf("kernel warnings on the console:\n%s", strings.Join(trouble, "\n"))
	}
}

// kernelLab brings up the namespace with the guest's tap, nfs-ganesha
// serving the export at pseudo "/" (NFSv3 too, with rpcbind and MOUNT on
// 20048, for version 3) in a private mount namespace, and busybox httpd
// serving image B and transfer.json.
func kernelLab(t *testing.T, im Images, dir, version string) *netnstest.NS {
	t.Helper()
	ns := netnstest.New(t, "fkern")
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"tuntap", "add", "dev", "tap0", "mode", "tap"},
		{"addr", "add", kernHostIP + "/24", "dev", "tap0"}, {"link", "set", "tap0", "up"}} {
		if out, err := Run(append([]string{"ip", "-n", ns.Name}, args...)...); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	protocols, v3 := "4", "0"
	if version == "3" {
		protocols, v3 = "3, 4", "1"
	}
	recov := filepath.Join(dir, "ganesha-recov")
	os.MkdirAll(recov, 0o700)
	conf := filepath.Join(dir, "ganesha.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`# see docs/LAB.md for why each setting is here; NFS version %s
NFS_CORE_PARAM { Protocols = %s; Bind_addr = %s; NFS_Port = 2049; MNT_Port = 20048; Mount_Path_Pseudo = true;
                 Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }
NFSV4 { Graceless = true; Allow_Numeric_Owners = true; Only_Numeric_Owners = true;
        RecoveryBackend = fs; RecoveryRoot = %s; }
EXPORT { Export_Id = 1; Path = %s; Pseudo = /; Access_Type = RW; Squash = No_Root_Squash; SecType = sys;
         Protocols = %s; Transports = TCP; FSAL { Name = VFS; } }
LOG { Default_Log_Level = WARN; }
`, version, protocols, kernHostIP, recov, im.Export, protocols)), 0o600)
	gpid, rpid := filepath.Join(dir, "ganesha.pid"), filepath.Join(dir, "rpcbind.pid")
	// Both leave the process group: end them by their pid files before
	// the namespace goes (cleanups run last-registered first).
	t.Cleanup(func() { EndPidFile(gpid); EndPidFile(rpid) })
	// ganesha registers v3 with rpcbind through /run/rpcbind.sock and exits
	// without it: rpcbind in the same mount namespace, first.
	if out, err := Run("ip", "netns", "exec", ns.Name, "unshare", "-m", "--propagation", "private", "sh", "-c", `
		mount -t tmpfs none /run && mount -t tmpfs none /var/lib/nfs && mkdir -p /run/ganesha /var/lib/nfs/ganesha || exit 1
		if [ "$4" = 1 ]; then
			rpcbind -f -w >>"$6" 2>&1 </dev/null &
			echo $! > "$5"
			i=0
			while [ ! -S /run/rpcbind.sock ]; do
				i=$((i + 1))
				if [ $i -gt 100 ] || ! kill -0 $! 2>/dev/null; then echo "rpcbind made no /run/rpcbind.sock" >&2; exit 1; fi
				sleep 0.1
			done
		fi
		exec ganesha.nfsd -f "$1" -L "$2" -p "$3" -N NIV_WARN`,
		"sh", conf, filepath.Join(dir, "ganesha.log"), gpid, v3, rpid, filepath.Join(dir, "rpcbind.log")); err != nil {
		t.Fatalf("ganesha (nfs %s) did not start: %v %s", version, err, out)
	}
	Start(t, "httpd", filepath.Join(dir, "httpd.log"), "ip", "netns", "exec", ns.Name,
		"busybox", "httpd", "-f", "-vv", "-p", kernHostIP+":8080", "-h", filepath.Join(im.Lab, "www"))
	listens := func(port string) bool {
		out, _ := Run("ip", "netns", "exec", ns.Name, "ss", "-Hltn", "sport = :"+port)
		return strings.TrimSpace(out) != ""
	}
	ports := []string{"2049", "8080"}
	if version == "3" {
		ports = append(ports, "111", "20048")
	}
	for _, p := range ports {
		if !waitFor(30*time.Second, func() bool { return listens(p) }) {
			t.Fatalf("nothing listens on %s:%s after 30 s (logs in %s)", kernHostIP, p, dir)
		}
	}
	if version == "3" && !waitFor(30*time.Second, func() bool {
		out, _ := Run("ip", "netns", "exec", ns.Name, "rpcinfo", "-p", kernHostIP)
		return regexp.MustCompile(`(?m)^ *100003 +3 +tcp`).MatchString(out) && regexp.MustCompile(`(?m)^ *100005 +3 +tcp`).MatchString(out)
	}) {
		t.Fatalf("nfs v3 or mount v3 over tcp not registered with rpcbind after 30 s")
	}
	waitFor(10*time.Second, func() bool { _, err := os.Stat(gpid); return err == nil })
	return ns
}

// printTimelines sets the variants' timelines side by side: each phase
// with the guest's duration as ferry printed it and the host seconds
// since the VM started.
func printTimelines(versions []string, tl map[string][]event) {
	type key struct{ side, phase string }
	var order []key
	cells := map[string]map[key]string{}
	rePhase := regexp.MustCompile(`^ferry: phase (\S+) (?:ok in (\S+)|failed)`)
	for _, v := range versions {
		cells[v] = map[key]string{}
		side, seen := "A", map[key]int{}
		for _, e := range tl[v] {
			var k key
			var d string
			switch m := rePhase.FindStringSubmatch(e.line); {
			case m != nil:
				k, d = key{side, m[1]}, m[2]
				if d == "" {
					d = "FAILED"
				}
			case strings.HasPrefix(e.line, "ferry: kexec armed"):
				k, side = key{"A", "(kexec armed)"}, "B"
			case strings.HasPrefix(e.line, "ferry-root: ready"):
				k = key{"root", "(ready)"}
			case strings.HasPrefix(e.line, "ferry-root: powering off"):
				k = key{"root", "(poweroff)"}
			default:
				continue
			}
			seen[k]++
			if seen[k] > 1 {
				k.phase += fmt.Sprintf(" #%d", seen[k])
			}
			if !containsKey(order, k) {
				order = append(order, k)
			}
			cells[v][k] = strings.TrimSpace(d + " " + fmt.Sprintf("%.1fs", e.at.Seconds()))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n== timelines (guest duration as ferry printed it / host seconds since VM start)\n%-5s %-16s", "image", "phase")
	for _, v := range versions {
		fmt.Fprintf(&b, " %22s", "nfs "+v)
	}
	b.WriteString("\n")
	for _, k := range order {
		fmt.Fprintf(&b, "%-5s %-16s", k.side, k.phase)
		for _, v := range versions {
			c := cells[v][k]
			if c == "" {
				c = "-"
			}
			fmt.Fprintf(&b, " %22s", c)
		}
		b.WriteString("\n")
	}
	fmt.Print(b.String())
}

func containsKey[K comparable](l []K, k K) bool {
	for _, x := range l {
		if x == k {
			return true
		}
	}
	return false
}

// runIn runs argv with env and returns its combined output.
func runIn(env []string, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

package vmlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/ipsec/ike"
)

// quickVerbs is the README's real-site quick start as TestQuickStart
// knows how to run it, step by step. TestQuickStartREADME (no lab
// needed) fails when the README's block says something else, so the
// block and the lab run cannot drift apart.
var quickVerbs = []string{
	"lender: ferry lender init",
	"lender: cp",
	"lender: ferry initrd build",
	"lender: scp",
	"borrower: ferry borrower init",
	"borrower: scp",
	"lender: ferry lender borrower add acme",
	"lender: ferry lender serve",
	"lender: systemctl start ferry-lender",
	"lender: ferry lender server add",
	"borrower: ferry gateway",
	"borrower: ferry borrower serve",
	"borrower: systemctl start ferry-gateway ferry-borrower",
	"borrower: ferry borrower image add web",
	"borrower: ferry borrower lease request",
	"borrower: ferry borrower lease show",
	"borrower: ferry borrower lease return",
	"lender: ferry lender server list",
}

func TestQuickStartREADME(t *testing.T) {
	steps, err := QuickStart(filepath.Join(Repo(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Host+": "+s.Verb())
	}
	if !slices.Equal(got, quickVerbs) {
		t.Fatalf("the README's real-site quick start is now\n  %s\nTestQuickStart runs\n  %s\n(update both)",
			strings.Join(got, "\n  "), strings.Join(quickVerbs, "\n  "))
	}
	for _, u := range []string{"ferry-lender", "ferry-borrower", "ferry-gateway"} {
		argv, err := ExecStart(filepath.Join(Repo(t), "dist", "systemd", u+".service"))
		if err != nil || argv[0] != "/usr/bin/ferry" {
			t.Fatalf("%s: ExecStart %q %v: want /usr/bin/ferry ...", u, argv, err)
		}
	}
}

// The lab's stand-ins for the README's addresses, names and paths.
var quickAddrs = map[string]string{
	"10.0.0.1": LenderIP, "203.0.113.5": LenderWANIP, "eth1": "lan",
	"198.51.100.7": GatewayIP, "10.8.0.1": BorrowerIP, "10.8.1.0/24": TunnelPool,
	"52:54:00:12:34:56": ServerMAC,
}

// BrokenMAC is a second server whose QMP socket does not exist: its
// power on fails, and that must show as power-error with the reason.
const BrokenMAC = "52:54:00:50:00:11"

// quickHost is one of the two hosts: a network namespace, a root that
// stands for / (etc/ferry, var/lib/ferry, run/ferry) and a home directory
// the commands run in.
type quickHost struct {
	name, ns, root, home string
	env                  []string
}

func (h *quickHost) path(p string) string { return filepath.Join(h.root, p) }

type quickRun struct {
	t        *testing.T
	c        *Chain
	bin      string
	units    string
	im       Images
	hosts    map[string]*quickHost
	lease    string
	started  map[string]*Proc
	brokenOK bool
}

// TestQuickStart runs the README's real-site quick start as an operator
// types it, on two hosts (network namespaces: the lender's with the PXE
// LAN and a QEMU server, the borrower's with the gateway, nfs-ganesha and
// image B), from the .deb (FERRY_DEB, extracted into a root; else the
// built binary and dist/systemd), the managers started by their units'
// ExecStart. Each list, show, request and return is read as JSON. Then a
// second server whose power driver fails: power-error, with the driver's
// reason at the lender. FERRY_LAB=1; FERRY_QUICK_KEEP=1 keeps the files.
func TestQuickStart(t *testing.T) {
	requireLab(t, "ganesha.nfsd", "unshare")
	repo := Repo(t)
	steps, err := QuickStart(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	q := &quickRun{t: t, hosts: map[string]*quickHost{}, started: map[string]*Proc{}}
	q.install(repo)
	t0 := time.Now()
	q.im = BuildImages(t, repo, q.bin, filepath.Join(repo, "build", "full-lab"))
	t.Logf("images built in %s", time.Since(t0).Round(time.Second))
	dir := filepath.Join(repo, "build", "quick-lab", fmt.Sprintf("run-%d", os.Getpid()))
	os.RemoveAll(dir)
	keepOnFailure(t, dir, "FERRY_QUICK_KEEP")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	q.c = &Chain{Cfg: ChainConfig{Ferry: q.bin, Images: q.im, Dir: dir, Servers: 1}, t: t, pki: map[string]string{}}
	q.c.topology()
	for _, h := range []struct{ name, ns string }{{"lender", q.c.L.Name}, {"borrower", q.c.B.Name}} {
		root := filepath.Join(dir, h.name+"-host")
		qh := &quickHost{name: h.name, ns: h.ns, root: root, home: filepath.Join(root, "root")}
		for _, d := range []string{qh.home, qh.path("etc/ferry"), qh.path("var/lib/ferry"), qh.path("run/ferry")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		qh.env = []string{"FERRY_LENDER_DIR=" + qh.path("var/lib/ferry/lender"), "FERRY_LENDER_CONFIG=" + qh.path("etc/ferry/lender.json"),
			"FERRY_BORROWER_DIR=" + qh.path("var/lib/ferry/borrower"), "FERRY_BORROWER_CONFIG=" + qh.path("etc/ferry/borrower.json"),
			"FERRY_GATEWAY_CONFIG=" + qh.path("etc/ferry/gateway.json")}
		q.hosts[h.name] = qh
	}
	q.c.ldir, q.c.bdir = q.hosts["lender"].path("var/lib/ferry/lender"), q.hosts["borrower"].path("var/lib/ferry/borrower")
	disk := filepath.Join(dir, "disk.raw")
	if out, err := Run("cp", "--sparse=always", q.im.Disk, disk); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	q.c.VM = QEMU{Name: "ferry-quickstart", Dir: dir, NetNS: q.c.L.Name, Tap: "tap0", MAC: ServerMAC, Disk: disk, Paused: true}.Start(t)
	q.c.VMs = []*VM{q.c.VM}

	for _, s := range steps {
		q.step(s)
	}
	if !q.brokenOK {
		t.Fatal("the power failure was never exercised (no lease show step?)")
	}
	t.Logf("quick start done in %s", time.Since(t0).Round(time.Second))
}

// install is the .deb extracted into a root (FERRY_DEB), or the built
// binary and the repository's units.
func (q *quickRun) install(repo string) {
	deb := os.Getenv("FERRY_DEB")
	if deb == "" {
		q.t.Logf("FERRY_DEB unset: the built binary and dist/systemd (make e2e passes the .deb of make package)")
		q.bin, q.units = labFerry(q.t, repo), filepath.Join(repo, "dist", "systemd")
		return
	}
	root := q.t.TempDir()
	if out, err := Run("dpkg-deb", "-x", deb, root); err != nil {
		q.t.Fatalf("%v %s", err, out)
	}
	q.bin, q.units = filepath.Join(root, "usr", "bin", "ferry"), filepath.Join(root, "lib", "systemd", "system")
	out, err := Run(q.bin, "--version")
	q.t.Logf("installed from %s: %s", filepath.Base(deb), strings.TrimSpace(out))
	if err != nil {
		q.t.Fatal(err)
	}
}

// rewrite maps the README's words to the lab's: addresses, / to the
// host's root, the images and the other host's home for scp.
func (q *quickRun) rewrite(h *quickHost, argv []string) []string {
	out := make([]string, 0, len(argv))
	for _, w := range argv {
		if v, ok := quickAddrs[w]; ok {
			w = v
		}
		switch {
		case w == "/boot/vmlinuz-VERSION" && h.name == "lender":
			w = q.im.Vmlinuz
		case w == "/boot/vmlinuz-VERSION":
			w = q.im.VmlinuzB
		case w == "/boot/initrd.img-VERSION":
			w = q.im.InitrdB
		case w == "/lib/modules/VERSION":
			w = q.im.ModDir
		case w == "/srv/ferry/template":
			w = q.im.Export
		case w == "LEASE_ID":
			w = q.lease
		case strings.HasSuffix(w, "-host:"):
			w = q.hosts[strings.TrimSuffix(w, "-host:")].home + "/"
		case strings.HasPrefix(w, "/etc/ferry/") || strings.HasPrefix(w, "/var/lib/ferry/"):
			w = h.path(w)
		}
		out = append(out, w)
	}
	return out
}

// ferry runs the binary on host h in its namespace and home directory:
// stdout, stderr and the exit status.
func (q *quickRun) ferry(h *quickHost, args ...string) (string, string, int) {
	argv := append([]string{"netns", "exec", h.ns, "env"}, h.env...)
	cmd := exec.Command("ip", append(append(argv, q.bin), args...)...)
	cmd.Dir = h.home
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		q.t.Fatalf("ferry %s: %v", strings.Join(args, " "), err)
	}
	return so.String(), se.String(), code
}

// mustFerry is ferry that must exit 0.
func (q *quickRun) mustFerry(h *quickHost, args ...string) string {
	q.t.Helper()
	so, se, code := q.ferry(h, args...)
	q.t.Logf("%s$ ferry %s\n%s%s", h.name, strings.Join(args, " "), so, se)
	if code != 0 {
		q.c.Fail("%s: ferry %s: exit %d\n%s%s", h.name, strings.Join(args, " "), code, so, se)
	}
	return so
}

// jsonOut inserts -o json after the verb (before LEASE_ID and the like).
func jsonOut(s QuickStep, args []string) []string {
	n := len(strings.Fields(s.Verb())) - 1 // args lack "ferry"
	return slices.Concat(args[:n], []string{"-o", "json"}, args[n:])
}

func decode[T any](t *testing.T, what, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s -o json: %v: %.2000s", what, err, s)
	}
	return v
}

type quickServer struct {
	ID, MAC, Phase, Error string
}

type quickLease struct {
	ID, State, Error string
	Lender           struct {
		ID, State string
		Servers   []quickServer
	}
	Events []map[string]any `json:"lender_events"`
}

type quickLenderServer struct {
	MAC, State, Phase, Power string
	LastError                string `json:"last_error"`
}

func (q *quickRun) step(s QuickStep) {
	t := q.t
	h := q.hosts[s.Host]
	argv := q.rewrite(h, s.Argv)
	verb := s.Verb()
	t.Logf("README step %s", s)
	switch verb {
	case "cp":
		if out, err := Run(argv...); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	case "scp":
		// scp [-r] SRC OTHER-host: between the two homes.
		src := argv[len(argv)-2]
		if !filepath.IsAbs(src) {
			src = filepath.Join(h.home, src)
		}
		if out, err := Run("cp", "-a", src, argv[len(argv)-1]); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	case "systemctl start ferry-lender", "systemctl start ferry-gateway ferry-borrower":
		for _, u := range argv[2:] {
			q.startUnit(h, u)
		}
	case "ferry lender init":
		out := q.mustFerry(h, argv[1:]...)
		if !strings.Contains(out, "ca_sha256 ") || !strings.Contains(out, "ferry borrower init") {
			t.Fatalf("lender init printed no CA digest or next command: %s", out)
		}
		// The lab's LAN has no DHCP server: ferry gives addresses, as the
		// file's own comment on "mode" says to set them.
		q.editJSON(h.path("etc/ferry/lender.json"), func(m map[string]any) {
			nb := m["netboot"].(map[string]any)
			nb["mode"], nb["pool_first"], nb["pool_last"] = "dhcp", "10.50.0.100", "10.50.0.150"
			nb["prefix"], nb["router"] = "10.50.0.0/24", LenderIP
		})
	case "ferry initrd build":
		// NIC_DRIVER: the lab's (virtio), with what A needs for NFS and
		// the keeper (BuildImages builds the same).
		var a []string
		for i := 0; i < len(argv); i++ {
			if argv[i] == "--module" && argv[i+1] == "NIC_DRIVER" {
				for _, m := range []string{"virtio_net", "virtio_blk", "virtio_pci", "nfsv4", "tun", "tcp_diag"} {
					a = append(a, "--module", m)
				}
				i++
				continue
			}
			a = append(a, argv[i])
		}
		q.mustFerry(h, append(a[1:], "--compress", "zstd")...)
	case "ferry borrower init":
		// The lab serves NFS with nfs-ganesha (docs/LAB.md).
		out := q.mustFerry(h, append(argv[1:], "--nfs", "ganesha")...)
		if !strings.Contains(out, "ferry lender borrower add acme") {
			t.Fatalf("borrower init does not print the lender's next command: %s", out)
		}
		sock := h.path("run/ferry/gateway.sock")
		q.editJSON(h.path("etc/ferry/borrower.json"), func(m map[string]any) {
			m["gateway_status"] = sock
			m["ganesha_exports_file"], m["ganesha_pid_file"] = q.c.path("ferry-exports.conf"), q.c.path("ganesha.pid")
		})
		q.editJSON(h.path("etc/ferry/gateway.json"), func(m map[string]any) { m["status"] = sock })
		q.c.ganesha()
	case "ferry lender server add":
		// The lab's BMC is QEMU's QMP socket, not ipmitool's.
		var a []string
		for i := 0; i < len(argv); i++ {
			if argv[i] == "--power" || argv[i] == "--power-opt" {
				i++
				continue
			}
			a = append(a, argv[i])
		}
		q.mustFerry(h, append(a[1:], "--power", "qmp", "--power-opt", "socket="+q.c.VM.QMP, "--power-opt", "off=quit")...)
		list := decode[[]quickLenderServer](t, "server list", q.mustFerry(h, "lender", "server", "list", "-o", "json"))
		if len(list) != 1 || list[0].MAC != ServerMAC || list[0].State != "free" || list[0].Power != "qmp" {
			t.Fatalf("server list after server add: %+v", list)
		}
	case "ferry lender serve", "ferry gateway", "ferry borrower serve":
		out := q.mustFerry(h, argv[1:]...)
		if strings.Contains(out, "error:") {
			t.Fatalf("%s: %s", verb, out)
		}
		t.Logf("%s --check:\n%s", verb, out)
		// The borrower's checks come before its gateway starts: what
		// appears only once the services run is a note, not a warning.
		for _, w := range []string{"warning: crl ", "warning: gateway_status "} {
			if strings.Contains(out, w) {
				q.c.Fail("%s --check on the fresh site: %q is not a problem yet\n%s", verb, w, out)
			}
		}
	case "ferry borrower lease request":
		q.request(h, s, argv)
	case "ferry borrower lease show":
		l := decode[quickLease](t, "lease show", q.mustFerry(h, jsonOut(s, argv[1:])...))
		if l.ID != q.lease || l.State != "active" || len(l.Lender.Servers) != 1 || l.Lender.Servers[0].Phase != "switch-root" {
			q.c.Fail("lease show: %+v", l)
		}
		q.reloadGateway(h)
		q.powerFailure()
	case "ferry borrower lease return":
		t0 := time.Now()
		l := decode[quickLease](t, "lease return", q.mustFerry(h, jsonOut(s, argv[1:])...))
		if l.State != "returned" || len(l.Lender.Servers) != 1 || l.Lender.Servers[0].Phase != "returned" {
			q.c.Fail("lease return --wait: %+v", l)
		}
		if !q.c.VM.Wait(30 * time.Second) {
			q.c.Fail("the lent server still runs after lease return --wait")
		}
		t.Logf("lease return --wait: %s", time.Since(t0).Round(time.Second))
	case "ferry lender server list":
		list := decode[[]quickLenderServer](t, "server list", q.mustFerry(h, jsonOut(s, argv[1:])...))
		states := map[string]quickLenderServer{}
		for _, s := range list {
			states[s.MAC] = s
		}
		if states[ServerMAC].State != "free" || states[BrokenMAC].Phase != "power-error" || states[BrokenMAC].LastError == "" {
			t.Fatalf("server list at the end: want %s free and %s power-error with its reason: %+v", ServerMAC, BrokenMAC, list)
		}
	default:
		if !strings.HasPrefix(verb, "ferry ") {
			t.Fatalf("README step %s: TestQuickStart does not know how to run it", s)
		}
		q.mustFerry(h, argv[1:]...)
	}
}

// request runs lease request --wait and checks the lease it prints: every
// server at switch-root, the root up through the tunnel.
func (q *quickRun) request(h *quickHost, s QuickStep, argv []string) {
	t0 := time.Now()
	so, se, code := q.ferry(h, jsonOut(s, argv[1:])...)
	q.t.Logf("lease request --wait: exit %d in %s\n%s", code, time.Since(t0).Round(time.Second), se)
	if code != 0 {
		q.c.Fail("lease request --wait: exit %d\n%s%s", code, so, se)
	}
	l := decode[quickLease](q.t, "lease request --wait", so)
	if l.State != "active" || len(l.Lender.Servers) != 1 || l.Lender.Servers[0].MAC != ServerMAC || l.Lender.Servers[0].Phase != "switch-root" {
		q.c.Fail("lease request --wait: want the lease active, %s at switch-root: %+v", ServerMAC, l)
	}
	for _, p := range []string{"switch-root"} {
		if !strings.Contains(se, "phase "+p) {
			q.c.Fail("lease request --wait printed no %q line: %s", "phase "+p, se)
		}
	}
	q.lease = l.ID
}

// reloadGateway is `systemctl reload ferry-gateway` after an edit of
// gateway.json while a server's root runs through the tunnel: the new
// DPD applies, the pool's change is named as waiting for a restart, and
// the server's SA is the same one after the reload (no reconnect).
func (q *quickRun) reloadGateway(h *quickHost) {
	t := q.t
	sas := func() []ike.SAStatus {
		return decode[[]ike.SAStatus](t, "gateway status", q.mustFerry(h, "gateway", "status", "--status", h.path("run/ferry/gateway.sock"), "-o", "json"))
	}
	before := sas()
	q.editJSON(h.path("etc/ferry/gateway.json"), func(m map[string]any) { m["dpd_seconds"] = 7; m["pool"] = "10.99.0.0/24" })
	gw := q.started["ferry-gateway"]
	log := q.c.path("gateway.log")
	if err := syscall.Kill(gw.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return countIn(log, "gateway: configuration reloaded") > 0 }) {
		q.c.Fail("systemctl reload ferry-gateway: no reload in its log: %s", tailFile(log, 2000))
		return
	}
	if countIn(log, "dpd=7s") == 0 || countIn(log, "these settings change only at restart") == 0 {
		q.c.Fail("gateway reload: want dpd=7s applied and pool named for a restart: %s", tailFile(log, 2000))
	}
	after := sas()
	if len(before) != 1 || len(after) != 1 || before[0].SPIi != after[0].SPIi || after[0].State != "established" {
		q.c.Fail("the lent server's SA across the gateway's reload: before %+v, after %+v", before, after)
	}
	t.Logf("gateway reloaded with a lent server up: its SA %s_i kept", after[0].SPIi)
}

// powerFailure adds a server whose QMP socket does not exist and asks for
// it: the lease request ends 1 with power-error, the lender's server list
// and lease show carry the driver's reason, the borrower's the state.
func (q *quickRun) powerFailure() {
	t, L, B := q.t, q.hosts["lender"], q.hosts["borrower"]
	missing := filepath.Join(q.c.Cfg.Dir, "no-such-bmc.sock")
	q.mustFerry(L, "lender", "server", "add", "--mac", BrokenMAC, "--power", "qmp", "--power-opt", "socket="+missing)
	so, se, code := q.ferry(B, "borrower", "lease", "request", "--count", "1", "--image", "web", "--root", q.im.Export, "--wait=3m", "-o", "json")
	t.Logf("lease request of the broken server: exit %d\n%s", code, se)
	l := decode[quickLease](t, "lease request --wait", so)
	if code != 1 || len(l.Lender.Servers) != 1 || l.Lender.Servers[0].MAC != BrokenMAC || l.Lender.Servers[0].Phase != "power-error" {
		q.c.Fail("lease request of %s: want exit 1 and power-error, got exit %d: %+v", BrokenMAC, code, l)
	}
	if !strings.Contains(se, "power-error") {
		q.c.Fail("lease request --wait does not say power-error: %s", se)
	}
	bs := decode[quickLease](t, "borrower lease show", q.mustFerry(B, "borrower", "lease", "show", "-o", "json", l.ID))
	if bs.Lender.Servers[0].Phase != "power-error" || strings.Contains(so+bs.Lender.Servers[0].Error, missing) {
		q.c.Fail("borrower lease show: want power-error without the lender's socket path: %+v", bs)
	}
	list := decode[[]quickLenderServer](t, "server list", q.mustFerry(L, "lender", "server", "list", "-o", "json"))
	for _, s := range list {
		if s.MAC == BrokenMAC && (s.Phase != "power-error" || !strings.Contains(s.LastError, "no-such-bmc.sock")) {
			q.c.Fail("lender server list: want %s power-error with the driver's reason: %+v", BrokenMAC, s)
		}
	}
	// The lender knows the lease by its own ID (the borrower's lease
	// JSON carries it as lender.id).
	ls := decode[struct {
		ID      string
		Servers []quickServer
		Events  []map[string]any
	}](t, "lender lease show", q.mustFerry(L, "lender", "lease", "show", "-o", "json", l.Lender.ID))
	if len(ls.Servers) != 1 || ls.Servers[0].Phase != "power-error" || !strings.Contains(ls.Servers[0].Error, "no-such-bmc.sock") {
		q.c.Fail("lender lease show: want power-error with the driver's reason: %+v", ls)
	}
	if !strings.Contains(fmt.Sprint(ls.Events), "power-error") {
		q.c.Fail("lender lease show -o json: no power-error in the lease's events: %v", ls.Events)
	}
	t.Logf("power-error as the lender shows it: %s", ls.Servers[0].Error)
	q.brokenOK = true
}

// startUnit starts a unit's ExecStart, with /usr/bin/ferry and the
// configuration under the host's root, and waits until it serves.
func (q *quickRun) startUnit(h *quickHost, unit string) {
	t := q.t
	argv, err := ExecStart(filepath.Join(q.units, unit+".service"))
	if err != nil {
		t.Fatal(err)
	}
	if argv[0] != "/usr/bin/ferry" {
		t.Fatalf("%s: ExecStart %q", unit, argv)
	}
	argv = q.rewrite(h, argv[1:])
	t.Logf("%s: ExecStart=ferry %s", unit, strings.Join(argv, " "))
	name := strings.TrimPrefix(unit, "ferry-")
	log := q.c.path(name + ".log")
	p := Start(t, unit, log, slices.Concat([]string{"ip", "netns", "exec", h.ns, "env"}, h.env, []string{q.bin}, argv)...)
	q.started[unit] = p
	ready := map[string]func() bool{
		"ferry-lender":  func() bool { return countIn(log, "dhcp listening") > 0 },
		"ferry-gateway": func() bool { _, err := os.Stat(h.path("run/ferry/gateway.sock")); return err == nil },
		"ferry-borrower": func() bool {
			_, _, code := q.ferry(h, "borrower", "lease", "list")
			return code == 0
		},
	}[unit]
	if ready == nil {
		t.Fatalf("%s: no readiness check", unit)
	}
	if !waitFor(30*time.Second, func() bool { return ready() || !p.Running() }) || !p.Running() {
		t.Fatalf("%s did not start serving: %s", unit, tailFile(log, 2000))
	}
}

// editJSON changes a configuration init wrote, keeping its "//" keys.
func (q *quickRun) editJSON(path string, f func(map[string]any)) {
	b, err := os.ReadFile(path)
	if err != nil {
		q.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		q.t.Fatalf("%s: %v", path, err)
	}
	f(m)
	if b, err = json.MarshalIndent(m, "", "  "); err == nil {
		err = os.WriteFile(path, b, 0o640)
	}
	if err != nil {
		q.t.Fatal(err)
	}
}

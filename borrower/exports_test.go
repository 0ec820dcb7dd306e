package borrower_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/api"
	"ferry/internal/netnstest"
	"ferry/lender"
)

// ganesha is a real nfs-ganesha in a network namespace of its own,
// serving only what its configuration %includes from exportsFile.
type ganesha struct {
	ns          *netnstest.NS
	addr        string // where it listens
	exportsFile string
	pidFile     string
	log         string
}

// startGanesha runs ganesha.nfsd in the foreground in a fresh network
// namespace whose one veth end holds addr and every address in clients
// (the lent servers' tunnel addresses, and strays), with a private /run
// and /var/lib/nfs. It skips without ganesha or root.
func startGanesha(t *testing.T, addr string, clients ...string) *ganesha {
	t.Helper()
	if _, err := exec.LookPath("ganesha.nfsd"); err != nil {
		t.Skip("nfs-ganesha not installed (scripts/ci-deps.sh)")
	}
	ns := netnstest.New(t, "bexp")
	netnstest.Veth(t, netnstest.End{NS: ns, Name: "nfs0"}, netnstest.End{NS: ns, Name: "nfs1"})
	for _, a := range append([]string{addr}, clients...) {
		ns.Run(t, "", "ip", "addr", "add", a+"/32", "dev", "nfs0")
	}
	dir := t.TempDir()
	g := &ganesha{ns: ns, addr: addr, exportsFile: filepath.Join(dir, "ferry-exports.conf"),
		pidFile: filepath.Join(dir, "ganesha.pid"), log: filepath.Join(dir, "ganesha.log")}
	os.WriteFile(g.exportsFile, []byte("# none yet\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "recov"), 0o700)
	conf := fmt.Sprintf(`NFS_CORE_PARAM { Protocols = 4; Bind_addr = %s; NFS_Port = 2049; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }
NFSV4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = %s; }
LOG { Default_Log_Level = EVENT; }
%%include "%s"
`, addr, filepath.Join(dir, "recov"), g.exportsFile)
	os.WriteFile(filepath.Join(dir, "ganesha.conf"), []byte(conf), 0o644)
	cmd := ns.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs none /run && mount -t tmpfs none /var/lib/nfs && mkdir -p /run/ganesha /var/lib/nfs/ganesha &&
		exec ganesha.nfsd -F -f "$1" -L "$2" -p "$3" -N NIV_EVENT`, "sh", filepath.Join(dir, "ganesha.conf"), g.log, g.pidFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(g.log)
			t.Logf("ganesha log:\n%s", log)
		}
	})
	waitFor(t, "ganesha to listen on "+addr+":2049", func() error {
		var err error
		ns.Do(t, func() { _, _, err = nfsLookup(addr, addr, "/") })
		return err
	})
	return g
}

// lookup walks path on ganesha from the source address from.
func (g *ganesha) lookup(t *testing.T, from, path string) (uint32, int) {
	t.Helper()
	var st uint32
	var n int
	var err error
	g.ns.Do(t, func() { st, n, err = nfsLookup(from, g.addr, path) })
	if err != nil {
		t.Fatalf("NFS lookup of %s from %s: %v", path, from, err)
	}
	return st, n
}

// waitExport waits until ganesha lets from read path (want true) or
// refuses it (false): ganesha rereads its exports a moment after SIGHUP.
func (g *ganesha) waitExport(t *testing.T, from, path string, want bool) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s readable from %s: %v", path, from, want), func() error {
		st, n := g.lookup(t, from, path)
		if (st == nfs4OK && n > 0) != want {
			return fmt.Errorf("%s from %s: %s with %d entries", path, from, nfsStatusName(st), n)
		}
		return nil
	})
}

// TestEachRootIsExportedToItsServerAlone: two leases on a real ganesha.
// A server reads its own root; the other server of its lease, the server
// of the other lease and a stray address are refused it; at return its
// export goes; a restarted borrower puts back what is active and drops
// what is not.
func TestEachRootIsExportedToItsServerAlone(t *testing.T) {
	const nfs, stray = "10.61.0.1", "10.61.8.200"
	g := startGanesha(t, nfs, "10.61.8.1", "10.61.8.2", "10.61.8.3", stray)
	l := newLabWith(t, buildFerry(t), func(cfg map[string]any) {
		cfg["tunnel_pool"], cfg["nfs_server"], cfg["nfs_export"] = "10.61.8.0/24", nfs, "/srv/roots"
		cfg["nfs_exports"], cfg["ganesha_exports_file"], cfg["ganesha_pid_file"] = "ganesha", g.exportsFile, g.pidFile
	})
	// Lease A: two servers; lease B: one.
	idA := leaseLine.FindStringSubmatch(l.must(t, "borrower", "lease", "request", "--dir", l.bdir, "--count", "2", "--image", "b1"))[1]
	idB := leaseLine.FindStringSubmatch(l.must(t, "borrower", "lease", "request", "--dir", l.bdir, "--count", "1", "--image", "b1"))[1]
	var ls []api.Lease
	if err := api.UnixClient(lender.AdminSocket(l.ldir)).Call(t.Context(), "GET", "/admin/leases", nil, &ls); err != nil || len(ls) != 2 {
		t.Fatalf("lender has %d leases (%v), want 2", len(ls), err)
	}
	var agents []*agent
	for _, le := range ls {
		for _, s := range le.Servers {
			a := &agent{mac: s.MAC, boot: l.bootParams(t, s.MAC)}
			if code, body := a.enroll(t); code != 200 {
				t.Fatalf("enroll %s: %d %s", s.MAC, code, body)
			}
			agents = append(agents, a)
		}
	}
	waitFor(t, "every server's key on the gateway's allow list", func() error {
		data, _ := os.ReadFile(filepath.Join(l.dir, "allow.jsonl"))
		for _, a := range agents {
			if !strings.Contains(string(data), a.pin()) {
				return fmt.Errorf("allow list lacks %s:\n%s", a.pin(), data)
			}
		}
		return nil
	})
	// Which root and address each server got, as the borrower recorded.
	type srv struct{ root, addr string }
	byLease := map[string][]srv{}
	for _, id := range []string{idA, idB} {
		var le struct {
			Roots  []string     `json:"roots"`
			Addrs  []netip.Addr `json:"tunnel_addrs"`
			Lender api.Lease    `json:"lender"`
		}
		if err := api.UnixClient(l.bdir+"/admin.sock").Call(t.Context(), "GET", "/admin/leases/"+id, nil, &le); err != nil {
			t.Fatal(err)
		}
		for i := range le.Lender.Servers {
			byLease[id] = append(byLease[id], srv{root: "/srv/roots/" + le.Roots[i], addr: le.Addrs[i].String()})
		}
	}
	a0, a1, b0 := byLease[idA][0], byLease[idA][1], byLease[idB][0]
	allow, _ := os.ReadFile(filepath.Join(l.dir, "allow.jsonl"))
	for _, s := range []srv{a0, a1, b0} {
		if !strings.Contains(string(allow), `"virtual_ip":"`+s.addr+`"`) {
			t.Errorf("the gateway is not told to give %s to its server:\n%s", s.addr, allow)
		}
	}
	for _, s := range []srv{a0, a1, b0} {
		g.waitExport(t, s.addr, s.root, true)
	}
	refused := func(from, path, who string) {
		t.Helper()
		if st, n := g.lookup(t, from, path); st == nfs4OK {
			t.Errorf("%s (%s) reads %s: %s, %d entries; want it refused", who, from, path, nfsStatusName(st), n)
		} else {
			t.Logf("%s (%s) mounting %s: %s (refused)", who, from, path, nfsStatusName(st))
		}
	}
	refused(a1.addr, a0.root, "the other server of the same lease")
	refused(b0.addr, a0.root, "the server of another lease")
	refused(a0.addr, b0.root, "a server of lease A")
	refused(stray, a0.root, "a stray address")
	// The parent of all roots is a directory of ganesha's pseudo file
	// system, which shows a client only the exports it may reach.
	if st, n := g.lookup(t, stray, "/srv/roots"); st == nfs4OK && n > 0 {
		t.Errorf("a stray address lists %d roots under /srv/roots", n)
	}

	// Return lease A: its exports go, B's stays.
	l.must(t, "borrower", "lease", "return", "--dir", l.bdir, idA)
	if data, _ := os.ReadFile(g.exportsFile); strings.Contains(string(data), a0.addr) || strings.Contains(string(data), a1.addr) {
		t.Errorf("after the return of lease A the exports file still has its servers:\n%s", data)
	}
	g.waitExport(t, a0.addr, a0.root, false)
	refused(a1.addr, a1.root, "a server of the returned lease")
	g.waitExport(t, b0.addr, b0.root, true)

	// A stale export in the file (a crash between two writes, a hand
	// edit) and a borrower restart: the file is made what the store says.
	l.borrowerP.kill()
	staleDir := filepath.Join(l.bdir, "roots", "stale")
	os.MkdirAll(filepath.Join(staleDir, "etc"), 0o755)
	data, _ := os.ReadFile(g.exportsFile)
	stale := fmt.Sprintf("EXPORT { Export_Id = 5000; Path = %q; Pseudo = \"/srv/roots/stale\"; Access_Type = None; SecType = sys; Protocols = 4; Transports = TCP; FSAL { Name = VFS; }\n"+
		"\tCLIENT { Clients = %s; Access_Type = RW; } }\n", staleDir, stray)
	os.WriteFile(g.exportsFile, append(data, stale...), 0o644)
	syscall.Kill(g.pid(t), syscall.SIGHUP)
	g.waitExport(t, stray, "/srv/roots/stale", true) // the stale export is live now
	l.startBorrower(t)
	g.waitExport(t, stray, "/srv/roots/stale", false)
	g.waitExport(t, b0.addr, b0.root, true)
	if data, _ := os.ReadFile(g.exportsFile); strings.Contains(string(data), stray) || strings.Count(string(data), "EXPORT {") != 1 {
		t.Errorf("after the restart the exports file is not exactly lease B's:\n%s", data)
	}
}

func (g *ganesha) pid(t *testing.T) int {
	var pid int
	data, _ := os.ReadFile(g.pidFile)
	if _, err := fmt.Sscan(string(data), &pid); err != nil {
		t.Fatalf("ganesha pid file %s: %q", g.pidFile, data)
	}
	return pid
}

package vmlab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"ferry/internal/netnstest"
)

// The whole chain's addresses (docs/LAB.md).
const (
	LenderIP    = "10.50.0.1"
	LenderWANIP = "10.51.0.1"
	GatewayIP   = "10.51.0.2"
	BorrowerIP  = "10.52.0.1"
	TunnelPool  = "10.52.8.0/24"
	ServerMAC   = "52:54:00:50:00:10"
	// StrayClient is a tunnel address the borrower gives no server of a
	// run: the stray root is exported to it alone.
	StrayClient = "10.52.8.250"
)

// Timers are the IKE timers of the gateway.json keys (docs/CONTRACT.md,
// "Timers"); zero leaves a key out (its default).
type Timers struct {
	DPD, IKELifetime, ChildLifetime, RekeyMargin time.Duration
}

func (tm Timers) keys(m map[string]any) {
	for k, d := range map[string]time.Duration{"dpd_seconds": tm.DPD, "ike_lifetime_seconds": tm.IKELifetime,
		"child_lifetime_seconds": tm.ChildLifetime, "rekey_margin_seconds": tm.RekeyMargin} {
		if d > 0 {
			m[k] = int(d.Seconds())
		}
	}
}

// ChainConfig is one run of the whole managed chain.
type ChainConfig struct {
	Ferry     string // the ferry binary
	Images    Images
	Dir       string // the run's files (configs, logs, captures, certificates)
	DataPlane string // ferry.dataplane= on A's command line: auto, kernel or user
	// Timers are the tunnels' IKE timers, the same at both ends: the
	// gateway's (gateway.json) and the servers' (borrower.json "tunnel",
	// which each lease carries to the keeper's tunnel state).
	Timers Timers
	// GatewayExtra and BorrowerExtra are more keys for gateway.json and
	// borrower.json: a setting the managers gain is one line here.
	GatewayExtra, BorrowerExtra map[string]any
	// Soak turns on the root's workload (scripts/root-init.sh): records
	// every 0.5 s and, with BigFile bytes, a file copied every CopyPause.
	Soak      bool
	BigFile   int
	CopyPause time.Duration
	// StrayRoot exports another lent server's root (to StrayClient alone,
	// as the borrower does) and tells the root's checks
	// (scripts/root-init.sh check_foreign) that it, and the directory above
	// every root, must not mount.
	StrayRoot bool
	// Firmware is the lent server's: FirmwareBIOS (default) or FirmwareUEFI;
	// NoNICROM makes the firmware's own PXE client boot (QEMU.NoNICROM).
	Firmware string
	NoNICROM bool
	// ReadyTimeout bounds lease request -> "ferry-root: ready" (default 10 min).
	ReadyTimeout time.Duration
	// RootReady is the console line that says the root is up (default
	// the lab's busybox root's "ferry-root: ready"; FERRY_ROOT_READY for
	// one's own root); RootDown the line its init prints when asked to
	// power off (default the busybox root's; nil checks nothing).
	RootReady, RootDown *regexp.Regexp
	// NetbootExtra are more keys for the lender's "netboot" section.
	NetbootExtra map[string]any
	// Servers is how many lent servers the lab has (default 1), all
	// leased by one request: server i has tap i, MAC ServerMACs(i) and
	// its own disk copy, console and QMP socket (in Dir for the first,
	// Dir/server-i for the others). MemMB and SMP size each guest
	// (default QEMU's).
	Servers    int
	MemMB, SMP int
	// VMExtra are more QEMU arguments for the first lent server (another
	// disk).
	VMExtra []string
}

// serverMAC is lent server i's MAC (the first is ServerMAC).
func serverMAC(i int) string { return fmt.Sprintf("52:54:00:50:00:%02x", 0x10+i) }

// Chain is the running lab: three namespaces (lender, WAN, borrower), the
// managers, the gateway, nfs-ganesha, two captures and the lent server.
type Chain struct {
	Cfg      ChainConfig
	L, W, B  *netnstest.NS
	VM       *VM   // the first lent server (VMs[0])
	VMs      []*VM // every lent server, in the order of ChainConfig.Servers
	WAN, LAN *Capture
	Lender   *Proc
	Gateway  *Proc
	Borrower *Proc
	Lease    string
	ServerIP string // from the lender's DHCP pool, read off the console
	VIP      string // the tunnel address the keeper reported
	// ServerIPs and VIPs are every server's, in the order of VMs
	// (ServerIP and VIP are the first's).
	ServerIPs, VIPs []string
	BigSHA256       string // the digest of /soak/big.in
	pki             map[string]string
	ldir, bdir      string
	lenderConfig    string
	t               testing.TB
}

// NewChain brings the lab up to the point where a lease request would
// start the transfer: namespaces, captures, a paused guest the lender
// powers on over QMP, lender, gateway, nfs-ganesha and the borrower.
func NewChain(t testing.TB, cfg ChainConfig) *Chain {
	t.Helper()
	netnstest.Require(t)
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 10 * time.Minute
	}
	if cfg.DataPlane == "" {
		cfg.DataPlane = "auto"
	}
	if cfg.RootReady == nil {
		cfg.RootReady = reReady
	}
	if cfg.MemMB == 0 {
		cfg.MemMB = vmMem(t) // FERRY_VM_MEM
	}
	if cfg.Servers == 0 {
		cfg.Servers = 1
	}
	c := &Chain{Cfg: cfg, t: t, ldir: filepath.Join(cfg.Dir, "lender"), bdir: filepath.Join(cfg.Dir, "borrower"), pki: map[string]string{}}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "pki")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	c.certs()
	c.soakRoot()
	c.strayRoot()
	c.topology()
	c.WAN = StartCapture(t, c.W.Name, "wan", filepath.Join(cfg.Dir, "wan.pcap"))
	c.LAN = StartCapture(t, c.L.Name, "lan", filepath.Join(cfg.Dir, "lan.pcap"))
	for i := 0; i < cfg.Servers; i++ {
		dir, name := cfg.Dir, "ferry-lent-server"
		if i > 0 {
			dir, name = filepath.Join(cfg.Dir, fmt.Sprintf("server-%d", i)), fmt.Sprintf("ferry-lent-server-%d", i)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		disk := filepath.Join(dir, "disk.raw")
		if out, err := Run("cp", "--sparse=always", cfg.Images.Disk, disk); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		var extra []string
		if i == 0 {
			extra = cfg.VMExtra
		}
		c.VMs = append(c.VMs, QEMU{Name: name, Dir: dir, NetNS: c.L.Name, Tap: fmt.Sprintf("tap%d", i), MAC: serverMAC(i),
			Disk: disk, Paused: true, Firmware: cfg.Firmware, NoNICROM: cfg.NoNICROM, MemMB: cfg.MemMB, SMP: cfg.SMP, Extra: extra}.Start(t))
	}
	c.VM = c.VMs[0]
	c.lenderUp()
	c.StartGateway()
	c.ganesha()
	c.borrowerUp()
	for _, vm := range c.VMs {
		if vm.Console.Text() != "" {
			t.Fatalf("a guest printed before the lender powered it on: %s", vm.Console.Tail(500))
		}
	}
	return c
}

// certs makes each organisation's CA and leaves with ferry's pki package.
func (c *Chain) certs() {
	dir := filepath.Join(c.Cfg.Dir, "pki")
	lo, err := NewOrg(dir, "lender-org")
	if err != nil {
		c.t.Fatal(err)
	}
	bo, err := NewOrg(dir, "borrower-org")
	if err != nil {
		c.t.Fatal(err)
	}
	c.pki["lender-ca"], c.pki["borrower-ca"] = lo.PEM, bo.PEM
	for _, l := range []struct {
		org  *Org
		name string
		ips  []string
	}{{lo, "lender-m2m", []string{LenderWANIP}}, {bo, "borrower-m2m", nil}, {bo, "borrower-keeper", nil},
		{bo, "borrower-images", []string{BorrowerIP}}, {bo, "gateway", []string{GatewayIP}}} {
		cert, key, err := l.org.Issue(l.name, l.ips...)
		if err != nil {
			c.t.Fatal(err)
		}
		c.pki[l.name], c.pki[l.name+".key"] = cert, key
	}
}

// soakRoot turns the workload on in the root template (the borrower's
// rootprep copies it per server) and writes the big file.
func (c *Chain) soakRoot() {
	if !c.Cfg.Soak {
		return
	}
	ex := c.Cfg.Images.Export
	conf := filepath.Join(ex, "etc", "ferry-lab.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		c.t.Fatal(err)
	}
	pause := int(c.Cfg.CopyPause.Seconds())
	if pause == 0 {
		pause = 20
	}
	b = append(b, fmt.Sprintf("soak=1\nsoak_copy_pause=%d\npoweroff_wait=7200\n", pause)...)
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		c.t.Fatal(err)
	}
	sd := filepath.Join(ex, "soak")
	if err := os.MkdirAll(sd, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if c.Cfg.BigFile > 0 {
		sum, err := writeBigFile(filepath.Join(sd, "big.in"), c.Cfg.BigFile)
		if err != nil {
			c.t.Fatal(err)
		}
		c.BigSHA256 = sum
	}
}

// strayRoot writes the stray root and the root's expectations about it.
func (c *Chain) strayRoot() {
	if !c.Cfg.StrayRoot {
		return
	}
	d := c.path("stray-root")
	if err := os.MkdirAll(d, 0o755); err != nil {
		c.t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d, "SECRET"), []byte("another lent server's root\n"), 0o644)
	conf := filepath.Join(c.Cfg.Images.Export, "etc", "ferry-lab.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = fmt.Fprintf(f, "foreign_root=%s:/srv/roots/stray\nroots_parent=%s:/srv/roots\n", BorrowerIP, BorrowerIP)
		f.Close()
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

// topology: the three namespaces, the WAN bridge, the lender LAN bridge
// with the guest's tap; the lender routes its servers to the WAN.
func (c *Chain) topology() {
	c.L, c.W, c.B = netnstest.New(c.t, "fsoakL"), netnstest.New(c.t, "fsoakW"), netnstest.New(c.t, "fsoakB")
	ip := func(args ...string) {
		c.t.Helper()
		if out, err := Run(append([]string{"ip"}, args...)...); err != nil {
			c.t.Fatalf("%v %s", err, out)
		}
	}
	for _, ns := range []*netnstest.NS{c.L, c.W, c.B} {
		ip("-n", ns.Name, "link", "set", "lo", "up")
	}
	ip("-n", c.W.Name, "link", "add", "wan", "type", "bridge")
	ip("-n", c.W.Name, "link", "set", "wan", "up")
	ip("link", "add", "lw0", "netns", c.L.Name, "type", "veth", "peer", "name", "wl0", "netns", c.W.Name)
	ip("link", "add", "bw0", "netns", c.B.Name, "type", "veth", "peer", "name", "wb0", "netns", c.W.Name)
	for _, n := range []string{"wl0", "wb0"} {
		ip("-n", c.W.Name, "link", "set", n, "master", "wan", "up")
	}
	ip("-n", c.L.Name, "addr", "add", LenderWANIP+"/24", "dev", "lw0")
	ip("-n", c.L.Name, "link", "set", "lw0", "up")
	ip("-n", c.B.Name, "addr", "add", GatewayIP+"/24", "dev", "bw0")
	ip("-n", c.B.Name, "link", "set", "bw0", "up")
	ip("-n", c.L.Name, "link", "add", "lan", "type", "bridge")
	for i := 0; i < c.Cfg.Servers; i++ {
		tap := fmt.Sprintf("tap%d", i)
		ip("-n", c.L.Name, "tuntap", "add", "dev", tap, "mode", "tap")
		ip("-n", c.L.Name, "link", "set", tap, "master", "lan", "up")
	}
	ip("-n", c.L.Name, "addr", "add", LenderIP+"/24", "dev", "lan")
	ip("-n", c.L.Name, "link", "set", "lan", "up")
	c.L.Run(c.t, "", "sysctl", "-qw", "net.ipv4.ip_forward=1")
	ip("-n", c.B.Name, "route", "add", "10.50.0.0/24", "via", LenderWANIP)
	ip("-n", c.B.Name, "link", "add", "lan", "type", "bridge")
	ip("-n", c.B.Name, "addr", "add", BorrowerIP+"/24", "dev", "lan")
	ip("-n", c.B.Name, "link", "set", "lan", "up")
}

// vmMem is FERRY_VM_MEM (MiB), else QEMU's default here (1024).
func vmMem(t testing.TB) int {
	s := os.Getenv("FERRY_VM_MEM")
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 256 {
		t.Fatalf("FERRY_VM_MEM=%q: want MiB, at least 256", s)
	}
	return n
}

func (c *Chain) path(name string) string { return filepath.Join(c.Cfg.Dir, name) }

func (c *Chain) writeJSON(name string, v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		c.t.Fatal(err)
	}
	p := c.path(name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// waitFor polls cond every 200 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(200 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

func (c *Chain) lenderUp() {
	out, err := Run(c.Cfg.Ferry, "lender", "init", "--dir", c.ldir, "--config", filepath.Join(c.ldir, "lender-init.json"), "--host", LenderIP)
	if err != nil || !strings.Contains(out, "ca_sha256") {
		c.t.Fatalf("lender init: %v %s", err, out)
	}
	// No ip= on the command line: A asks the lender's DHCP server, B keeps
	// A's address.
	nb := map[string]any{"interface": "lan", "server_ip": LenderIP, "mode": "dhcp",
		"pool_first": "10.50.0.100", "pool_last": "10.50.0.150", "prefix": "10.50.0.0/24", "router": LenderIP,
		"http_addr": LenderIP + ":8080", "kernel_a": c.Cfg.Images.Vmlinuz, "initrd_a": c.Cfg.Images.InitrdA,
		"cmdline": "console=ttyS0 quiet sysrq_always_enabled nokaslr ferry.dataplane=" + c.Cfg.DataPlane}
	for k, v := range c.Cfg.NetbootExtra {
		nb[k] = v
	}
	c.lenderConfig = c.writeJSON("lender.json", map[string]any{
		"dir": c.ldir, "agent_listen": LenderIP + ":8443", "public_url": "https://" + LenderIP + ":8443",
		"m2m_listen": LenderWANIP + ":9443", "m2m_cert": c.pki["lender-m2m"], "m2m_key": c.pki["lender-m2m.key"],
		"m2m_client_ca": c.pki["borrower-ca"], "token_ttl": "10m", "netboot": nb})
	c.StartLender()
	for i, vm := range c.VMs {
		if out, err := Run(c.Cfg.Ferry, "lender", "server", "add", "--dir", c.ldir, "--mac", serverMAC(i), "--power", "qmp",
			"--power-opt", "socket="+vm.QMP, "--power-opt", "off=quit"); err != nil {
			c.t.Fatalf("lender server add: %v %s", err, out)
		}
	}
}

// StartLender starts `ferry lender serve` (again, after a kill) and waits
// until its DHCP server listens.
func (c *Chain) StartLender() {
	c.t.Helper()
	log := c.path("lender.log")
	mark := countIn(log, "dhcp listening")
	c.Lender = Start(c.t, "lender", log, "ip", "netns", "exec", c.L.Name, c.Cfg.Ferry, "lender", "serve", "--config", c.lenderConfig)
	if !waitFor(30*time.Second, func() bool { return countIn(log, "dhcp listening") > mark }) {
		c.t.Fatalf("lender did not start serving DHCP: %s", tailFile(log, 1500))
	}
}

// StartGateway starts `ferry gateway` (again, after a kill) and waits for
// its status socket.
func (c *Chain) StartGateway() {
	c.t.Helper()
	allow := c.path("allow.jsonl")
	if _, err := os.Stat(allow); err != nil {
		os.WriteFile(allow, nil, 0o600)
	}
	m := map[string]any{"listen": GatewayIP, "ca": filepath.Join(c.ldir, "ca.pem"), "cert": c.pki["gateway"], "key": c.pki["gateway.key"],
		"pool": TunnelPool, "subnets": []string{"10.52.0.0/24"}, "inner": "10.52.0.254/32",
		"allow": allow, "status": c.path("gateway.sock")}
	c.Cfg.Timers.keys(m)
	for k, v := range c.Cfg.GatewayExtra {
		m[k] = v
	}
	conf := c.writeJSON("gateway.json", m)
	os.Remove(c.path("gateway.sock")) // a killed gateway leaves its socket
	c.Gateway = Start(c.t, "gateway", c.path("gateway.log"), "ip", "netns", "exec", c.B.Name, c.Cfg.Ferry, "gateway", "--config", conf)
	if !waitFor(15*time.Second, func() bool { _, err := os.Stat(c.path("gateway.sock")); return err == nil }) {
		c.t.Fatalf("ferry gateway made no status socket: %s", tailFile(c.path("gateway.log"), 1500))
	}
}

// ganesha serves the borrower's roots over NFSv4 from the borrower
// namespace, in a private mount namespace (docs/LAB.md, "nfs-ganesha").
func (c *Chain) ganesha() {
	roots := filepath.Join(c.bdir, "roots")
	recov := c.path("ganesha-recov")
	for _, d := range []string{roots, recov} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			c.t.Fatal(err)
		}
	}
	conf := c.path("ganesha.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`NFS_CORE_PARAM { Protocols = 4; Bind_addr = %s; NFS_Port = 2049; Enable_NLM = false;
                 Enable_RQUOTA = false; Enable_UDP = false; }
NFSV4 { Graceless = true; Allow_Numeric_Owners = true; Only_Numeric_Owners = true;
        RecoveryBackend = fs; RecoveryRoot = %s; }
%s
%%include "%s"
LOG { Default_Log_Level = WARN; }
`, BorrowerIP, recov, c.strayExport(), c.path("ferry-exports.conf"))), 0o600)
	// The borrower's exports, one per lent server (nfs_exports ganesha).
	os.WriteFile(c.path("ferry-exports.conf"), []byte("# written by ferry borrower\n"), 0o644)
	pidf := c.path("ganesha.pid")
	// ganesha daemonizes out of its process group: end it by its pid file
	// before the namespaces go (cleanups run last-registered first).
	c.t.Cleanup(func() { EndPidFile(pidf) })
	if out, err := Run("ip", "netns", "exec", c.B.Name, "unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs none /run && mount -t tmpfs none /var/lib/nfs && mkdir -p /run/ganesha /var/lib/nfs/ganesha &&
		exec ganesha.nfsd -f "$1" -L "$2" -p "$3" -N NIV_WARN`, "sh", conf, c.path("ganesha.log"), pidf); err != nil {
		c.t.Fatalf("ganesha did not start: %v %s", err, out)
	}
	if !waitFor(30*time.Second, func() bool {
		out, _ := Run("ip", "netns", "exec", c.B.Name, "ss", "-Hltn", "sport = :2049")
		return strings.TrimSpace(out) != ""
	}) {
		c.t.Fatalf("ganesha does not listen on %s:2049: %s", BorrowerIP, tailFile(c.path("ganesha.log"), 1000))
	}
	waitFor(10*time.Second, func() bool { _, err := os.Stat(pidf); return err == nil })
}

// strayExport is the stray root's ganesha export, or nothing.
func (c *Chain) strayExport() string {
	if !c.Cfg.StrayRoot {
		return ""
	}
	return fmt.Sprintf(`EXPORT { Export_Id = 1; Path = %s; Pseudo = /srv/roots/stray; Access_Type = None;
         Squash = Root_Squash; SecType = sys; Protocols = 4; Transports = TCP; FSAL { Name = VFS; }
         CLIENT { Clients = %s; Access_Type = RW; Squash = No_Root_Squash; } }`, c.path("stray-root"), StrayClient)
}

func (c *Chain) borrowerUp() {
	m := map[string]any{"dir": c.bdir, "lender_url": "https://" + LenderWANIP + ":9443",
		"m2m_cert": c.pki["borrower-m2m"], "m2m_key": c.pki["borrower-m2m.key"], "m2m_ca": c.pki["lender-ca"],
		"borrower_ca": c.pki["borrower-ca"], "gateway": GatewayIP + ":500", "allow_file": c.path("allow.jsonl"),
		"gateway_status": c.path("gateway.sock"),
		"image_listen":   BorrowerIP + ":9444", "image_url": "https://" + BorrowerIP + ":9444",
		"image_cert": c.pki["borrower-images"], "image_key": c.pki["borrower-images.key"],
		"tunnel_pool": TunnelPool, "nfs_server": BorrowerIP, "nfs_export": "/srv/roots",
		"nfs_exports": "ganesha", "ganesha_exports_file": c.path("ferry-exports.conf"), "ganesha_pid_file": c.path("ganesha.pid"),
		"keeper_client_cert": c.pki["borrower-keeper"], "keeper_client_key": c.pki["borrower-keeper.key"],
		"default_template": c.Cfg.Images.Export, "poll_seconds": 1}
	tm := map[string]any{}
	c.Cfg.Timers.keys(tm)
	if len(tm) > 0 {
		m["tunnel"] = tm
	}
	for k, v := range c.Cfg.BorrowerExtra {
		m[k] = v
	}
	c.writeJSON("borrower.json", m)
	// No nfs.nfs4_unique_id=: one image B serves every server of a lease,
	// and B gives each its own NFSv4 client identity (its trace).
	add := []string{c.Cfg.Ferry, "borrower", "image", "add", "--dir", c.bdir, "b1", "--kernel", c.Cfg.Images.VmlinuzB,
		"--initrd", c.Cfg.Images.InitrdB, "--cmdline", "console=ttyS0 quiet sysrq_always_enabled nokaslr"}
	if c.Cfg.Images.ModulesB != "" {
		add = append(add, "--modules", c.Cfg.Images.ModulesB)
	}
	if out, err := Run(add...); err != nil {
		c.t.Fatalf("borrower image add: %v %s", err, out)
	}
	c.StartBorrower()
}

// StartBorrower starts `ferry borrower serve` (again, after a kill) and
// waits until its admin socket answers.
func (c *Chain) StartBorrower() {
	c.t.Helper()
	c.Borrower = Start(c.t, "borrower", c.path("borrower.log"), "ip", "netns", "exec", c.B.Name, c.Cfg.Ferry,
		"borrower", "serve", "--config", c.path("borrower.json"))
	if !waitFor(30*time.Second, func() bool {
		_, err := Run(c.Cfg.Ferry, "borrower", "lease", "list", "--dir", c.bdir)
		return err == nil && c.Borrower.Running()
	}) {
		c.t.Fatalf("borrower manager did not start: %s", tailFile(c.path("borrower.log"), 1500))
	}
}

var (
	reLease   = regexp.MustCompile(`lease (B[0-9a-f]+)`)
	reReady   = regexp.MustCompile(`ferry-root: ready`)
	reDown    = regexp.MustCompile(`ferry-root: clean shutdown requested`)
	reAddress = regexp.MustCompile(`ferry: address ([0-9.]+)/[0-9]+ dev \S+ via [0-9.]+ from dhcp server`)
	reVIP     = regexp.MustCompile(`ferry: tunnel up gateway=[0-9.]+ vip=([0-9.]+) \(keeper\) via (kernel ESP|user-space ESP)`)
)

// Request asks the borrower for one lease of every server and waits until
// each root says ready (the time until the last); it records the lease,
// the servers' addresses and the keepers' tunnel addresses.
func (c *Chain) Request() time.Duration {
	t0 := time.Now()
	out, err := Run(c.Cfg.Ferry, "borrower", "lease", "request", "--dir", c.bdir, "--count", strconv.Itoa(len(c.VMs)), "--image", "b1",
		"--key", fmt.Sprintf("soak-%d", time.Now().UnixNano()))
	if err != nil {
		c.t.Fatalf("lease request: %v", err)
	}
	m := reLease.FindStringSubmatch(out)
	if m == nil {
		c.t.Fatalf("lease request printed %q, want a lease id", out)
	}
	c.Lease = m[1]
	end := t0.Add(c.Cfg.ReadyTimeout)
	c.ServerIPs, c.VIPs = nil, nil
	// A panicked guest halts (-no-reboot) without exiting: stop waiting
	// for it at once.
	// A stalled one (soft lockup, RCU stall) never recovers in the lab:
	// record where its CPUs are (StallDump) and stop waiting.
	readyOrPanic := regexp.MustCompile(`(` + c.Cfg.RootReady.String() + `)|Kernel panic - not syncing.*|(` + reStall.String() + `)`)
	for i, vm := range c.VMs {
		m, err := vm.Console.Expect(readyOrPanic, time.Until(end), vm.Done())
		if err != nil {
			c.Fail("server %d: the borrower's root never said ready: %v", i, err)
		}
		if m[len(m)-1] != "" {
			c.Fail("server %d: the guest's kernel stalled: %q", i, m[0])
		}
		if m[1] == "" {
			c.Fail("server %d: %s", i, m[0])
		}
	}
	ready := time.Since(t0)
	for i, vm := range c.VMs {
		con := vm.Console.Text()
		m := reAddress.FindStringSubmatch(con)
		if m == nil {
			c.Fail("server %d: image A printed no address from the lender's DHCP pool", i)
		}
		v := reVIP.FindAllStringSubmatch(con, -1)
		if v == nil {
			c.Fail("server %d: the keeper never reported the tunnel up", i)
		}
		c.ServerIPs, c.VIPs = append(c.ServerIPs, m[1]), append(c.VIPs, v[len(v)-1][1])
	}
	c.ServerIP, c.VIP = c.ServerIPs[0], c.VIPs[0]
	return ready
}

// Fail fails the test with the tails of the logs and the console.
func (c *Chain) Fail(format string, a ...any) {
	c.t.Helper()
	var b strings.Builder
	for i, vm := range c.VMs {
		// A stalled guest (any failure may come from one): where its CPUs
		// are, before the tails below are taken.
		if vm.Running() && reStall.MatchString(vm.Console.Text()) {
			err := vm.StallDump()
			fmt.Fprintf(&b, "--- server %d stalled: vCPU registers in %s, SysRq backtraces on its console (dump errors: %v)\n",
				i, filepath.Join(filepath.Dir(vm.Console.Path), "stall-registers.txt"), err)
		}
	}
	for _, f := range []string{"lender.log", "borrower.log", "gateway.log", "ganesha.log"} {
		fmt.Fprintf(&b, "--- %s (tail)\n%s\n", f, tailFile(c.path(f), 1200))
	}
	for i, vm := range c.VMs {
		fmt.Fprintf(&b, "--- console of server %d (tail)\n%s\n", i, vm.Console.Tail(3000))
	}
	c.t.Fatalf("%s (files in %s)\n%s", fmt.Sprintf(format, a...), c.Cfg.Dir, b.String())
}

// RootFile is the path on the borrower's host of a file in the lent
// server's NFS root ("" until rootprep has made the root).
func (c *Chain) RootFile(rel string) string {
	m, _ := filepath.Glob(filepath.Join(c.bdir, "roots", "*", rel))
	if len(m) == 0 {
		return ""
	}
	return m[0]
}

// StopCopies asks the root's workload to stop copying the big file (it
// finishes the copy under way) and waits up to d for it to say so.
func (c *Chain) StopCopies(d time.Duration) error {
	dir := c.RootFile("soak")
	if dir == "" {
		return fmt.Errorf("no soak directory in the root")
	}
	if err := os.WriteFile(filepath.Join(dir, "copies-stop"), nil, 0o644); err != nil {
		return err
	}
	if !waitFor(d, func() bool { _, err := os.Stat(filepath.Join(dir, "copies-stopped")); return err == nil }) {
		return fmt.Errorf("the root did not stop its copies within %s", d)
	}
	return nil
}

// KeeperStatus reads the keeper's /status through the tunnel from the
// borrower's namespace.
func (c *Chain) KeeperStatus() (map[string]any, error) {
	out, err := Run("ip", "netns", "exec", c.B.Name, "curl", "-sS", "-m", "10", "http://"+c.VIP+":7070/status")
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return nil, fmt.Errorf("keeper status %.200q: %w", out, err)
	}
	return m, nil
}

// WANDown cuts the WAN for the lent server: the lender's router drops
// every packet it would forward (nftables; the host has no netem). The
// server still reaches the lender itself.
func (c *Chain) WANDown() error {
	if _, err := Run("ip", "netns", "exec", c.L.Name, "nft", "add table inet ferry_outage"); err != nil {
		return err
	}
	_, err := Run("ip", "netns", "exec", c.L.Name, "nft",
		"add chain inet ferry_outage cut { type filter hook forward priority -10; policy drop; }")
	return err
}

// WANUp undoes WANDown.
func (c *Chain) WANUp() error {
	_, err := Run("ip", "netns", "exec", c.L.Name, "nft", "delete table inet ferry_outage")
	return err
}

// Return runs `ferry borrower lease return` and waits for every guest to
// power off by itself; it returns the outcome `lease show` recorded. A
// kernel warning, oops or bug on any console fails it.
func (c *Chain) Return(ctx context.Context) (string, error) {
	if out, err := Run(c.Cfg.Ferry, "borrower", "lease", "return", "--dir", c.bdir, c.Lease); err != nil {
		return out, err
	}
	down := c.Cfg.RootDown
	if down == nil && c.Cfg.RootReady == reReady {
		down = reDown
	}
	end := time.Now().Add(60 * time.Second)
	for i, vm := range c.VMs {
		if !vm.Wait(time.Until(end)) {
			vm.Quit(ctx)
			return "", fmt.Errorf("server %d did not power off by itself within 60 s of the return (QMP quit sent)", i)
		}
		if down != nil && !down.MatchString(vm.Console.Text()) {
			return "", fmt.Errorf("server %d: the root's init never got the keeper's power-off signal (no %q on the console)", i, down)
		}
	}
	for i, vm := range c.VMs {
		if trouble := vm.Console.KernelTrouble(); len(trouble) > 0 {
			return "", fmt.Errorf("server %d: kernel warnings on the console (A, B or the root):\n%s", i, strings.Join(trouble, "\n"))
		}
	}
	show, _ := Run(c.Cfg.Ferry, "borrower", "lease", "show", "--dir", c.bdir, c.Lease)
	if n := len(regexp.MustCompile(`(?m)^shutdown \S+ +clean`).FindAllString(show, -1)); n != len(c.VMs) {
		return show, fmt.Errorf("lease show records %d clean shutdowns, want %d", n, len(c.VMs))
	}
	return show, nil
}

// Leaks lists the lent servers' packets seen in clear: on the WAN,
// anything of it that is not IKE/ESP (UDP 500/4500) and anything of the
// borrower's networks towards it not inside ESP; on the lender LAN the
// same, except what it says to the lender itself (DHCP, TFTP, HTTP(S),
// phase reports) and ARP. Only packets the server sent count as its: the
// gateway's and the lender's ICMP errors are theirs.
//
// The server's ICMP errors about the gateway's IKE/ESP packets (port
// unreachable for UDP 500/4500, while no socket listens between A's
// tunnel and B's keeper) quote only IKE/ESP bytes: they are counted by
// ICMPAboutIKE, not here.
func (c *Chain) Leaks() (wan, lan []string, err error) {
	ike := "(udp port 500 or udp port 4500 or " + icmpAboutIKE + ")"
	q := func(cp *Capture, f string) []string {
		l, e := cp.Packets(f)
		if e != nil && err == nil {
			err = e
		}
		return l
	}
	for _, srv := range c.ServerIPs {
		wan = append(wan, q(c.WAN, "src host "+srv+" and not "+ike)...)
		wan = append(wan, q(c.WAN, "src net 10.52.0.0/16 and dst host "+srv+" and not "+ike)...)
		lan = append(lan, q(c.LAN, "src host "+srv+" and not dst host "+LenderIP+" and not "+ike+" and not (udp port 67 or udp port 68) and not arp")...)
	}
	lan = append(lan, q(c.LAN, "net 10.52.0.0/16 and not "+ike)...)
	return wan, lan, err
}

// icmpAboutIKE matches an ICMP error quoting a UDP packet to port 500 or
// 4500 (the quoted IP header without options, then the UDP ports).
const icmpAboutIKE = "(icmp[icmptype] == icmp-unreach and (icmp[30:2] == 500 or icmp[30:2] == 4500))"

// ICMPAboutIKE lists the server's ICMP errors about IKE/ESP packets on
// the WAN.
func (c *Chain) ICMPAboutIKE() ([]string, error) {
	return c.WAN.Packets("src host " + c.ServerIP + " and " + icmpAboutIKE)
}

// Rekeys counts the rekeys each side started: the gateway's (its log,
// across restarts) and the server's (the keeper logs to the console).
func (c *Chain) Rekeys() (gwChild, gwIKE, srvChild, srvIKE int) {
	gl := c.path("gateway.log")
	con := c.VM.Console.Text()
	return countIn(gl, "CHILD_SA rekeyed"), countIn(gl, "IKE SA rekeyed"),
		strings.Count(con, "CHILD_SA rekeyed"), strings.Count(con, "IKE SA rekeyed")
}

func countIn(path, s string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), s)
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	return tail(string(b), n)
}

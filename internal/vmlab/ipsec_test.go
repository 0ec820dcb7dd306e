package vmlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"ferry/internal/netnstest"
	"ferry/pki"
)

// The kernel-ESP guest's lab: the host side of the guest's tap, a
// subnet behind each peer, and the file server on the peer's inner address.
const (
	ipsecHost  = "10.34.0.1"
	ipsecGuest = "10.34.0.2"
	ipsecPort  = "8080"
)

// ipsecModules are loaded in this order (each after its dependencies).
// The crypto ones are what the kernel would otherwise ask /sbin/modprobe
// for (docs/LAB.md): drbg for seqiv's stdrng (its default is
// hmac(sha512)), seeded by jitterentropy_rng, which needs sha3.
var ipsecModules = strings.Fields(`virtio_pci virtio_net veth esp4 xfrm_user xfrm_interface sha512_generic sha3_generic
	jitterentropy_rng drbg gcm ctr ghash_generic ghash_clmulni_intel aesni_intel seqiv echainiv`)

// ipsecPeer is one responder the guest's `ferry vpn up --dataplane
// kernel` runs against.
type ipsecPeer struct {
	name, subnet, inner, pool string
}

var ipsecPeers = []ipsecPeer{
	{"gateway", "10.34.12.0/24", "10.34.12.1", "10.34.201.0/24"},    // ferry gateway, user-space ESP over TUN
	{"strongswan", "10.34.13.0/24", "10.34.13.1", "10.34.202.0/24"}, // charon, kernel-libipsec
}

// TestIPsecGuest is kernel ESP in a QEMU guest: the cached Debian kernel
// with a busybox initramfs whose /init-test (scripts/ipsec-guest/
// guest-init.sh, shell where it fits) runs ipsec/xfrm's tests on a kernel
// with ESP, then `ferry vpn up --dataplane kernel` (XFRM states and
// policies, espinudp) against each peer, pings the inner address, fetches
// a file by sha256 through the tunnel, waits for a real CHILD_SA rekey,
// does both again and takes the tunnel down cleanly; the guest prints
// PASS or FAIL REASON. FERRY_LAB=1 runs it; FERRY_IPSEC_PEERS (default
// "gateway strongswan") and FERRY_IPSEC_MB (default 20) narrow it.
func TestIPsecGuest(t *testing.T) {
	requireLab(t, "depmod", "modprobe", "ldd", "swanctl", "/usr/lib/ipsec/charon")
	repo := Repo(t)
	ferry := labFerry(t, repo)
	lab := filepath.Join(repo, "build", "ipsec-guest")
	vmlinuz, moddir := KernelCache(t, repo, lab)
	dir := filepath.Join(lab, fmt.Sprintf("run-%d", os.Getpid()))
	os.RemoveAll(dir)
	for _, d := range []string{"pki", "www", "root/etc/ipsec-guest", "root/opt/iproute2"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	keepOnFailure(t, dir, "FERRY_IPSEC_KEEP")
	path := func(n string) string { return filepath.Join(dir, n) }
	mb := 20
	if s := os.Getenv("FERRY_IPSEC_MB"); s != "" {
		var err error
		if mb, err = strconv.Atoi(s); err != nil || mb < 1 {
			t.Fatalf("FERRY_IPSEC_MB=%q: want a number of MB", s)
		}
	}

	// One CA (ferry's pki) for the gateway, the guest's lease and charon.
	org, err := NewOrg(path("pki"), "ipsec-ca")
	if err != nil {
		t.Fatal(err)
	}
	cert := map[string]string{}
	for _, n := range []string{"gateway", "lease-guest", "swan"} {
		if cert[n], cert[n+".key"], err = org.Issue(n); err != nil {
			t.Fatal(err)
		}
	}
	leaf, err := pki.LoadCertsFile(cert["lease-guest"])
	if err != nil {
		t.Fatal(err)
	}
	pin, err := pki.Pin(leaf[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path("pki/allow.jsonl"), []byte(`{"pin":"`+pin+`","lease":"lease-guest"}`+"\n"), 0o600)
	sum, err := writeBigFile(path("www/blob"), mb<<20)
	if err != nil {
		t.Fatal(err)
	}
	guestImage(t, repo, ferry, moddir, dir, org.PEM, cert["lease-guest"], cert["lease-guest.key"])

	ns := netnstest.New(t, "fipsec")
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"tuntap", "add", "dev", "tap0", "mode", "tap"},
		{"addr", "add", ipsecHost + "/24", "dev", "tap0"}, {"link", "set", "tap0", "up"}} {
		if out, err := Run(append([]string{"ip", "-n", ns.Name}, args...)...); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	want := strings.Fields(os.Getenv("FERRY_IPSEC_PEERS"))
	for _, w := range want {
		if w != "gateway" && w != "strongswan" {
			t.Fatalf("FERRY_IPSEC_PEERS: %q is not gateway or strongswan", w)
		}
	}
	for _, p := range ipsecPeers {
		if len(want) > 0 && !containsKey(want, p.name) {
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			pd := path(p.name)
			os.MkdirAll(pd, 0o700)
			switch p.name {
			case "gateway":
				conf := writeJSONFile(t, filepath.Join(pd, "gateway.json"), map[string]any{"listen": ipsecHost, "ca": org.PEM,
					"cert": cert["gateway"], "key": cert["gateway.key"], "pool": p.pool, "subnets": []string{p.subnet},
					"inner": p.inner + "/32", "allow": path("pki/allow.jsonl"), "status": filepath.Join(pd, "gateway.sock"), "tun": "fipsecgw0"})
				Start(t, "gateway", filepath.Join(pd, "gateway.log"), "ip", "netns", "exec", ns.Name, ferry, "gateway", "--config", conf)
			case "strongswan":
				startCharon(t, repo, ns, pd, p, org.PEM, cert["swan"], cert["swan.key"])
			}
			// The file server on the peer's inner address, once it is there.
			if !waitFor(10*time.Second, func() bool {
				out, _ := Run("ip", "-n", ns.Name, "-o", "addr")
				return strings.Contains(out, " "+p.inner+"/")
			}) {
				t.Fatalf("%s put no inner address %s up", p.name, p.inner)
			}
			Start(t, "httpd", filepath.Join(pd, "httpd.log"), "ip", "netns", "exec", ns.Name, "busybox", "httpd", "-f", "-p", p.inner+":"+ipsecPort, "-h", path("www"))
			vm := QEMU{Name: "ferry-ipsec-" + p.name, Dir: pd, NetNS: ns.Name, Tap: "tap0", MAC: "52:54:00:34:00:02",
				Kernel: vmlinuz, Initrd: path("guest.img"), MemMB: 512, Timeout: 5 * time.Minute,
				Append: fmt.Sprintf("console=ttyS0 quiet panic=-1 rdinit=/init-test ipsec.peer=%s ipsec.addr=%s ipsec.gw=%s ipsec.subnet=%s ipsec.target=%s ipsec.port=%s ipsec.sha256=%s",
					p.name, ipsecGuest, ipsecHost, p.subnet, p.inner, ipsecPort, sum)}.Start(t)
			problem := ""
			if !vm.Wait(5*time.Minute + 10*time.Second) {
				problem = "VM timed out after 300 s"
				vm.End()
			} else if err := vm.Err(); err != nil {
				problem = "QEMU: " + err.Error()
			}
			con := vm.Console.Text()
			val := func(k string) string {
				m := regexp.MustCompile(`(?m)^ipsec-guest: `+k+` (\S+)`).FindAllStringSubmatch(con, -1)
				if m == nil {
					return "-"
				}
				return m[len(m)-1][1]
			}
			rate := "-"
			if ms, err := strconv.Atoi(val("transfer-ms")); err == nil && ms > 0 {
				rate = fmt.Sprintf("%.1f", float64(mb)/(float64(ms)/1000))
			}
			line := fmt.Sprintf("peer %s tunnel-up %sms transfer %dMB %sms (%s MB/s) replay-window %s espinudp-states %s xfrm-tests %s",
				p.name, val("tunnel-up-ms"), mb, val("transfer-ms"), rate, val("replay-window"), val("espinudp-states"), val("xfrm-tests"))
			if regexp.MustCompile(`(?m)^ipsec-guest: PASS`).MatchString(con) {
				fmt.Printf("ipsec-guest: %s PASS\n", line)
				return
			}
			why := regexp.MustCompile(`(?m)^ipsec-guest: FAIL (.*)`).FindStringSubmatch(con)
			if why != nil {
				problem = why[1]
			} else if problem == "" {
				problem = "no PASS marker"
			}
			t.Errorf("ipsec-guest: %s FAIL %s (console %s):\n%s", line, problem, vm.Console.Path, vm.Console.Tail(2500))
		})
	}
}

// guestImage builds the guest's initramfs into dir/guest.img: the ESP
// modules with their load order (ferry resolves the .modinfo
// dependencies; kmod's depmod and modprobe --show-depends on the unpacked
// copy give the order), iproute2's ip with its libraries (`ip xfrm`:
// busybox ip has none), ipsec/xfrm's tests, the lease's key and
// certificate, busybox and guest-init.sh as /init-test.
func guestImage(t *testing.T, repo, ferry, moddir, dir, ca, leaseCert, leaseKey string) {
	t.Helper()
	root := filepath.Join(dir, "root")
	kver := filepath.Base(moddir)
	var mods []string
	for _, m := range ipsecModules {
		found := false
		filepath.WalkDir(moddir, func(p string, d os.DirEntry, err error) error {
			n := filepath.Base(p)
			if err == nil && !found && (strings.HasPrefix(n, m+".ko") || strings.HasPrefix(n, strings.ReplaceAll(m, "_", "-")+".ko")) {
				found = true
			}
			return nil
		})
		if found {
			mods = append(mods, "--module", m)
		} else {
			t.Logf("module %s not in %s: skipped", m, kver)
		}
	}
	run := func(argv ...string) string {
		t.Helper()
		out, err := Run(argv...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	run(append([]string{ferry, "initrd", "build", "-o", filepath.Join(dir, "modules.img"), "--kernel-modules", moddir}, mods...)...)
	run(ferry, "initrd", "extract", filepath.Join(dir, "modules.img"), root)
	os.RemoveAll(filepath.Join(root, "bin"))
	os.Remove(filepath.Join(root, "init"))
	Run("depmod", "-b", root, kver) // no modules.order/builtin in a partial tree: it complains
	var order []string
	seen := map[string]bool{}
	for _, m := range ipsecModules {
		out, _ := Run("modprobe", "-d", root, "-S", kver, "--show-depends", m)
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "insmod" && !seen[f[1]] {
				seen[f[1]] = true
				order = append(order, strings.TrimPrefix(f[1], root))
			}
		}
	}
	if len(order) == 0 {
		t.Fatalf("no module load order (depmod/modprobe on %s)", root)
	}
	etc := filepath.Join(root, "etc", "ipsec-guest")
	os.WriteFile(filepath.Join(etc, "modules.order"), []byte(strings.Join(order, "\n")+"\n"), 0o644)
	ipbin, err := exec.LookPath("ip")
	if err == nil {
		ipbin, err = filepath.EvalSymlinks(ipbin)
	}
	if err != nil {
		t.Fatal(err)
	}
	opt := filepath.Join(root, "opt", "iproute2")
	run("cp", ipbin, filepath.Join(opt, "ip"))
	for _, lib := range regexp.MustCompile(`/\S+`).FindAllString(run("ldd", ipbin), -1) {
		run("cp", "-L", lib, opt)
	}
	cmd := exec.Command("go", "test", "-c", "-o", filepath.Join(root, "opt", "xfrm.test"), "./ipsec/xfrm")
	cmd.Dir, cmd.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test -c ./ipsec/xfrm: %v\n%s", err, out)
	}
	run("cp", ca, filepath.Join(etc, "ca.pem"))
	run("cp", leaseCert, filepath.Join(etc, "lease.pem"))
	run("install", "-m", "0600", leaseKey, filepath.Join(etc, "lease.key"))
	busybox, err := exec.LookPath("busybox")
	if err == nil {
		busybox, err = filepath.EvalSymlinks(busybox)
	}
	if err != nil {
		t.Fatal(err)
	}
	run(ferry, "initrd", "build", "-o", filepath.Join(dir, "guest.img"), "--add", filepath.Join(root, "lib")+":/lib",
		"--add", filepath.Join(root, "etc")+":/etc", "--add", filepath.Join(root, "opt")+":/opt", "--add", busybox+":/bin/busybox",
		"--add", filepath.Join(repo, "scripts", "ipsec-guest", "guest-init.sh")+":/init-test")
}

// startCharon runs strongSwan's charon (kernel-libipsec) in ns with its
// own /run, config and vici socket in dir (docs/LAB.md), its certificate
// and the CA where swanctl finds them, and loads the responder's
// connection (scripts/ipsec-guest/swanctl.conf.in).
func startCharon(t *testing.T, repo string, ns *netnstest.NS, dir string, p ipsecPeer, ca, cert, key string) {
	t.Helper()
	for _, d := range []string{"x509", "x509ca", "private"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	cp := func(from, to string) {
		b, err := os.ReadFile(from)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, to), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	cp(cert, "x509/gw.pem")
	cp(ca, "x509ca/ca.pem")
	cp(key, "private/gw.key")
	fill := func(in, out string, r *strings.Replacer) string {
		b, err := os.ReadFile(filepath.Join(repo, "scripts", in))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, out), []byte(r.Replace(string(b))), 0o600)
		return filepath.Join(dir, out)
	}
	sconf := fill("strongswan/strongswan.conf.in", "strongswan.conf", strings.NewReplacer("@DIR@", dir))
	conf := fill("ipsec-guest/swanctl.conf.in", "swanctl.conf", strings.NewReplacer("@HOST@", ipsecHost, "@SUBNET@", p.subnet, "@POOL@", p.pool))
	if out, err := Run("ip", "-n", ns.Name, "addr", "add", p.inner+"/32", "dev", "lo"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() { Run("ip", "-n", ns.Name, "addr", "del", p.inner+"/32", "dev", "lo") })
	Start(t, "charon", filepath.Join(dir, "charon.out"), "env", "STRONGSWAN_CONF="+sconf, "ip", "netns", "exec", ns.Name,
		"unshare", "-m", "sh", "-c", "mount -t tmpfs none /run && exec /usr/lib/ipsec/charon")
	vici := filepath.Join(dir, "charon.vici")
	if !waitFor(5*time.Second, func() bool { _, err := os.Stat(vici); return err == nil }) {
		t.Fatalf("charon made no vici socket in %s: %s", dir, tailFile(filepath.Join(dir, "charon.out"), 1000))
	}
	if out, err := Run("env", "STRONGSWAN_CONF="+sconf, "swanctl", "--load-all", "--file", conf, "--uri", "unix://"+vici); err != nil {
		t.Fatalf("swanctl --load-all: %v %s", err, out)
	}
}

package vmlab

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var reShutdownSeconds = regexp.MustCompile(`(?m)^shutdown \S+ +(\S+)\s.*?([0-9.]+)\s*s\b`)

// TestRootsLab runs the whole chain with the lab's busybox root and with a
// debootstrap'd systemd root whose systemd-networkd asks DHCP on the NIC
// that carries the NFS root, renews while the lease runs (short DHCP
// leases), keeps the address and the tunnel, and powers off at return
// within seconds (the keeper's IKE DELETE once systemd-shutdown has the
// root read-only). FERRY_LAB_ROOTS picks roots (default "busybox systemd");
// FERRY_ROOT_TEMPLATE with FERRY_ROOT_READY replaces the systemd root
// with one's own; FERRY_DATAPLANE picks the ESP plane (default auto).
func TestRootsLab(t *testing.T) {
	requireLab(t, "debootstrap", "ganesha.nfsd", "tcpdump", "nft")
	repo := Repo(t)
	ferry := labFerry(t, repo)
	lab := filepath.Join(repo, "build", "roots-lab")
	im := OwnParts(t, ferry, labCache(t), BuildImages(t, repo, ferry, lab))
	roots := strings.Fields(os.Getenv("FERRY_LAB_ROOTS"))
	if len(roots) == 0 {
		roots = []string{"busybox", "systemd"}
	}
	var lines []string
	for _, root := range roots {
		t.Run(root, func(t *testing.T) { lines = append(lines, runRoot(t, ferry, im, root)) })
	}
	fmt.Printf("\n%s%s", tableHead, strings.Join(lines, ""))
}

const tableHead = "root            ready   dhcp-renewals  return(keeper->gone)  guest off after return\n"

// TestDistroImageBLab boots image B as Debian makes it, on Debian's cloud
// kernel (another release than A's): the initrd written by
// initramfs-tools' kernel hook, with the systemd root (networkd, udev, a
// disk driver loaded by the root), and the one written by dracut's, with
// the busybox root. ferry's init runs instead of theirs; their own must
// never run. FERRY_LAB_DISTROS picks (default "initramfs-tools dracut").
func TestDistroImageBLab(t *testing.T) {
	requireLab(t, "debootstrap", "ganesha.nfsd", "tcpdump", "nft")
	repo := Repo(t)
	ferry := labFerry(t, repo)
	cache := labCache(t)
	im := BuildImages(t, repo, ferry, filepath.Join(repo, "build", "distro-lab"))
	gens := strings.Fields(os.Getenv("FERRY_LAB_DISTROS"))
	if len(gens) == 0 {
		gens = []string{"initramfs-tools", "dracut"}
	}
	var lines []string
	for _, gen := range gens {
		t.Run(gen, func(t *testing.T) {
			d := DistroImageB(t, cache, SystemdBase(t, cache), gen)
			b := im
			b.VmlinuzB, b.InitrdB, b.ModulesB = d.Vmlinuz, d.Initrd, d.Modules
			root := "busybox"
			if gen == "initramfs-tools" {
				root = "systemd"
			}
			line := runRoot(t, ferry, b, root)
			lines = append(lines, fmt.Sprintf("%-15s B %s, %s", root, d.Release, gen)+line[15:])
		})
	}
	fmt.Printf("\n%s%s", tableHead, strings.Join(lines, ""))
}

// theirInit are lines a distribution initrd's own init prints: ferry's
// rdinit= must keep it from ever running.
var theirInit = regexp.MustCompile(`Loading, please wait|Begin: Loading essential drivers|dracut-pre-udev|dracut: |initrd-b: original /init ran`)

func labCache(t *testing.T) string {
	if c := os.Getenv("FERRY_CACHE"); c != "" {
		return c
	}
	return filepath.Join(Repo(t), "build", "cache")
}

func runRoot(t *testing.T, ferry string, im Images, root string) string {
	dir := filepath.Join(im.Lab, "run-"+root)
	os.RemoveAll(dir)
	// FERRY_DATAPLANE as TestFullChain: the user-space plane dies with
	// the keeper, so a root's shutdown that kills it cannot finish.
	cfg := ChainConfig{Ferry: ferry, Images: im, Dir: dir, DataPlane: os.Getenv("FERRY_DATAPLANE")}
	dhcpLease, lateDisk := 0, ""
	switch root {
	case "busybox":
	case "systemd", "ifupdown", "networkmanager":
		if own := os.Getenv("FERRY_ROOT_TEMPLATE"); own != "" {
			cfg.Images.Export = own
		} else {
			base := SystemdBase(t, labCache(t))
			if root == "networkmanager" {
				base = NetworkManagerBase(t, labCache(t), base)
			}
			cfg.Images.Export = SystemdTemplate(t, base, filepath.Join(im.Lab, root+"-root"), map[string]string{"systemd": "networkd", "ifupdown": "ifupdown", "networkmanager": "networkmanager"}[root])
			cfg.RootReady, cfg.RootDown = RootReadySystemd, RootDownSystemd
			// A disk on virtio-scsi, whose driver neither A nor B carries:
			// the root's udev loads it after switch_root, and the keeper
			// must mark the disk read-only as it appears.
			modDir := im.ModDir // B's release: A's, or the one B's modules come from
			if im.ModulesB != "" {
				modDir = im.ModulesB
			}
			AddModules(t, ferry, modDir, cfg.Images.Export, "virtio_scsi", "sd_mod")
			lateDisk = filepath.Join(im.Lab, "late-disk.raw")
			if err := writePattern(lateDisk, 16<<20); err != nil {
				t.Fatal(err)
			}
			cfg.VMExtra = []string{"-device", "virtio-scsi-pci,id=scsi0", "-drive", "file=" + lateDisk + ",format=raw,if=none,id=late0",
				"-device", "scsi-hd,drive=late0,bus=scsi0.0"}
		}
		// networkd renews at half the lease: a few renewals in the run.
		// NetworkManager, kept off the NIC by ferry's hand-off, runs no
		// DHCP client on it: nothing to renew.
		if root != "networkmanager" {
			dhcpLease = 60
			cfg.NetbootExtra = map[string]any{"dhcp_lease_time": fmt.Sprintf("%ds", dhcpLease)}
		}
	case "sysvinit":
		// Debian's sysvinit-core: PID 1 is neither systemd nor busybox, so
		// the keeper runs the root's own poweroff and sysvinit's rc 0
		// takes the root down (sendsigs, umountroot, halt).
		cfg.Images.Export = SysvinitTemplate(t, SysvinitBase(t, labCache(t), SystemdBase(t, labCache(t))), filepath.Join(im.Lab, root+"-root"))
		cfg.RootReady, cfg.RootDown = RootReadySysvinit, RootDownSysvinit
	default:
		t.Fatalf("FERRY_LAB_ROOTS: unknown root %q (busybox, systemd, ifupdown, networkmanager, sysvinit)", root)
	}
	if re := os.Getenv("FERRY_ROOT_READY"); re != "" {
		cfg.RootReady = regexp.MustCompile(re)
		cfg.RootDown = nil
	}
	c := NewChain(t, cfg)
	ready := c.Request()
	con := c.VM.Console.Text()
	if m := theirInit.FindString(con); m != "" {
		c.Fail("image B's own init ran (%q on the console)", m)
	}
	if root != "busybox" {
		m := cfg.RootReady.FindString(con)
		t.Logf("%s root: %s", root, m)
		if root == "networkmanager" && cfg.RootReady == RootReadySystemd {
			if !strings.Contains(m, "nm_state=unmanaged addr="+c.ServerIP+" ") || !strings.Contains(m, "udevd=active") || !strings.Contains(m, "init=systemd") {
				c.Fail("NetworkManager did not leave the root's NIC with A's address %s unmanaged (ferry's hand-off): %q", c.ServerIP, m)
			}
		} else if cfg.RootReady == RootReadySystemd && (!strings.Contains(m, "dhcp4="+c.ServerIP+" ") ||
			root == "systemd" && !strings.Contains(m, "10-ferry-root-") || !strings.Contains(m, "udevd=active") || !strings.Contains(m, "init=systemd")) {
			c.Fail("the systemd root's networkd did not take the NIC with ferry's hand-off and A's address %s by DHCP: %q", c.ServerIP, m)
		}
	}
	if root == "sysvinit" && cfg.RootReady == RootReadySysvinit {
		if m := cfg.RootReady.FindString(con); !strings.Contains(m, "dhcp4="+c.ServerIP+" ") || !regexp.MustCompile(` init=init exe=(/usr)?/sbin/init `).MatchString(m) {
			c.Fail("the sysvinit root's ifupdown did not take the NIC with A's address %s by DHCP, or PID 1 is not sysvinit: %q", c.ServerIP, m)
		}
	}
	if root == "networkmanager" {
		// NetworkManager's own timers (a DHCP attempt gives up after 45 s)
		// run past its start: the root must still answer through the
		// tunnel (the keeper's status below) after them.
		time.Sleep(50 * time.Second)
	}
	renewals := "-"
	if dhcpLease > 0 {
		// Past one renewal time (half the lease): the root must still answer
		// through the tunnel with the same address.
		time.Sleep(time.Duration(dhcpLease)*time.Second/2 + 10*time.Second)
		// A renewal is a REQUEST unicast from the address to the server
		// (the first DISCOVER/REQUEST of A and of networkd come from 0.0.0.0).
		req, _ := c.LAN.Packets("src host " + c.ServerIP + " and dst host " + LenderIP + " and udp dst port 67")
		acks, _ := c.LAN.Packets("src host " + LenderIP + " and dst host " + c.ServerIP + " and udp dst port 68")
		renewals = fmt.Sprintf("%d/%d", len(req), len(acks))
		if len(req) == 0 || len(acks) == 0 {
			c.Fail("no DHCP renewal of %s answered by the lender after ready: %d requests, %d answers", c.ServerIP, len(req), len(acks))
		}
	}
	var lateSum string
	if lateDisk != "" {
		lateSum = fileSum(t, lateDisk)
		if m := RootReadySystemd.FindString(con); !strings.Contains(m, " sda:ro=1") {
			c.Fail("the late disk (virtio-scsi, loaded by the root's udev) is not read-only in the root: %q", m)
		}
	}
	if st, err := c.KeeperStatus(); err != nil {
		c.Fail("keeper status through the tunnel after %s: %v", ready, err)
	} else {
		t.Logf("keeper status: %v", st)
		// The lab's B carries no virtio-scsi driver: the root's udev loads
		// it and the keeper marks the disk. A distribution's initrd(B) has
		// it: B marks the disk and says that A saw one disk fewer.
		late, _ := st["disks_marked_late"].([]any)
		switch {
		case lateDisk == "":
		case im.ModulesB == "" && (len(late) == 0 || late[0] != "sda"):
			c.Fail("the keeper reports disks marked late %v, want sda", st["disks_marked_late"])
		case im.ModulesB != "" && !strings.Contains(con, "ferry: warning: disks: A saw 1 (vda), B sees 2"):
			c.Fail("B loaded the virtio-scsi driver A lacked but did not report the disk count A saw")
		}
	}
	tret := time.Now()
	show, err := c.Return(context.Background())
	off := time.Since(tret)
	if err != nil {
		c.Fail("lease return: %v\n%s", err, show)
	}
	secs := "?"
	if m := reShutdownSeconds.FindStringSubmatch(show); m != nil {
		secs = m[2] + " s"
		// sysvinit has no step after the root's last read where the keeper
		// could delete the tunnel (halt's own script and binary are read
		// from the read-only root): the gateway learns by DPD, within the
		// borrower's shutdown_wait ("clean" above).
		if f, _ := strconv.ParseFloat(m[2], 64); f > 15 && root != "sysvinit" {
			t.Errorf("the server left the gateway %s after the keeper was asked: the keeper's IKE DELETE did not go at shutdown", secs)
		}
	}
	t.Logf("lease show:\n%s", show)
	if root == "sysvinit" && cfg.RootDown == RootDownSysvinit {
		checkSysvinitDown(t, c.VM.Console.Text())
	}
	if lateDisk != "" && fileSum(t, lateDisk) != lateSum {
		t.Errorf("the late disk %s changed during the lease", lateDisk)
	}
	return fmt.Sprintf("%-15s %-7s %-14s %-21s %s\n", root, ready.Round(time.Second), renewals, secs, off.Round(100*time.Millisecond))
}

// writePattern writes n bytes of a non-zero pattern to path.
func writePattern(path string, n int) error {
	b := []byte(strings.Repeat("ferry-lab late disk: must never be written. ", n/44+1))[:n]
	return os.WriteFile(path, b, 0o644)
}

func fileSum(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// The keeper's and sysvinit's console lines at a return, in the order a
// clean power-off through the root's own rc 0 prints them.
var sysvinitDown = []*regexp.Regexp{
	regexp.MustCompile(`shutdown requested: the root's own power-off command ran.*command=/sbin/poweroff`),
	RootDownSysvinit,
	regexp.MustCompile(`the network root is read-only after the shutdown request`),
	regexp.MustCompile(`Will now halt`),
}

// checkSysvinitDown asserts that the keeper ran the root's poweroff, that
// sysvinit's rc 0 ran (the lab's rc script stopped, the keeper saw the
// NFS root turn read-only, halt ran) in that order, and that sendsigs
// spared the keeper (/run/sendsigs.omit.d): a keeper that gets SIGTERM
// while the root is writable says it stops without deleting the tunnel.
func checkSysvinitDown(t *testing.T, con string) {
	t.Helper()
	at := 0
	for _, re := range sysvinitDown {
		loc := re.FindStringIndex(con[at:])
		if loc == nil {
			t.Errorf("no %q on the console after offset %d (sysvinit's shutdown through the root's poweroff):\n%s", re, at, tail(con, 4000))
			return
		}
		t.Logf("console: %s", strings.TrimSpace(con[at+loc[0]:at+loc[0]+strings.IndexByte(con[at+loc[0]:]+"\n", '\n')]))
		at += loc[1]
	}
	if strings.Contains(con, "stopping without deleting the tunnel") {
		t.Errorf("sendsigs killed the keeper while the root was writable (not spared by /run/sendsigs.omit.d)")
	}
}

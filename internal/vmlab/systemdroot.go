package vmlab

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// SystemdSuite is the Debian release the lab's systemd root is made of.
const SystemdSuite = "bookworm"

// systemdPackages are what the lab's systemd root holds beyond
// debootstrap's minbase: systemd as PID 1, udev, networkd (in systemd),
// dbus for networkctl, and the tools its checks use.
const systemdPackages = "systemd,systemd-sysv,udev,dbus,kmod,iproute2,ifupdown,isc-dhcp-client,procps"

// RootReadySystemd is the line the lab's systemd root prints once
// networkd has configured the NIC (the ferry-lab-ready unit below).
var RootReadySystemd = regexp.MustCompile(`ferry-root: ready \(systemd\)[^\n]*`)

// RootDownSystemd is the line that unit prints when systemd stops it at
// power-off.
var RootDownSystemd = regexp.MustCompile(`ferry-root: systemd is shutting down`)

// AddModules puts the modules names (with their dependencies) of the
// kernel tree modDir into root's /usr/lib/modules/RELEASE, indexed by
// depmod, as a distribution's kernel package would: the root's udev then
// loads what B's initrd lacked (the lab's late disk driver).
func AddModules(t testing.TB, ferry, modDir, root string, names ...string) {
	t.Helper()
	tmp := t.TempDir()
	args := []string{"initrd", "build", "-o", filepath.Join(tmp, "m.img"), "--kernel-modules", modDir}
	for _, n := range names {
		args = append(args, "--module", n)
	}
	if out, err := Run(append([]string{ferry}, args...)...); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := Run(ferry, "initrd", "extract", filepath.Join(tmp, "m.img"), filepath.Join(tmp, "x")); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	rel := filepath.Base(modDir)
	dst := filepath.Join(root, "usr", "lib", "modules")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := Run("cp", "-a", filepath.Join(tmp, "x", "lib", "modules", rel), dst); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		Run("cp", filepath.Join(modDir, f), filepath.Join(dst, rel, f))
	}
	if out, err := Run("depmod", "-b", root, rel); err != nil {
		t.Fatalf("depmod: %v %s", err, out)
	}
}

// SystemdBase is a debootstrap'd Debian root with systemd and udev in the
// cache (FERRY_CACHE/roots/bookworm-systemd), made once: debootstrap
// needs Debian's mirror and minutes.
func SystemdBase(t testing.TB, cache string) string {
	t.Helper()
	base := filepath.Join(cache, "roots", SystemdSuite+"-systemd")
	if _, err := os.Stat(filepath.Join(base, "lib", "systemd", "systemd")); err == nil {
		return base
	}
	tmp := base + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("debootstrap %s into %s (once; minutes)", SystemdSuite, base)
	if out, err := Run("debootstrap", "--variant=minbase", "--include="+systemdPackages, SystemdSuite, tmp,
		"http://deb.debian.org/debian"); err != nil {
		t.Fatalf("debootstrap: %v\n%s", err, tail(out, 3000))
	}
	if err := os.Rename(tmp, base); err != nil {
		t.Fatal(err)
	}
	return base
}

// SystemdTemplate makes dir, a root template for the borrower, from the
// cached base: systemd as init, udev, and systemd-networkd with the
// borrower's own DHCP configuration for every Ethernet NIC (ferry's
// hand-off in /run takes the NIC that carries the root). A unit prints
// RootReadySystemd, with what networkd says of the NIC, once networkd has
// configured it by DHCP, and RootDownSystemd when it is stopped.
func SystemdTemplate(t testing.TB, base, dir string) string {
	t.Helper()
	os.RemoveAll(dir)
	if out, err := Run("cp", "-a", "--reflink=auto", base, dir); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	id := make([]byte, 16)
	rand.Read(id)
	files := map[string]string{
		"etc/hostname":   "ferry-root\n",
		"etc/machine-id": hex.EncodeToString(id) + "\n", // not a first boot: no systemd-firstboot prompts
		"etc/fstab":      "# the root is the borrower's NFS export, mounted by ferry's image B\n",
		"etc/systemd/network/80-borrower-dhcp.network": "[Match]\nName=e*\n\n[Network]\nDHCP=ipv4\n",
		"etc/systemd/system/ferry-lab-ready.service": `[Unit]
Description=ferry lab: say on the console when networkd has configured the NIC
Wants=network-online.target
After=network-online.target systemd-networkd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/ferry-lab-ready
ExecStop=/bin/sh -c 'echo "ferry-root: systemd is shutting down" >/dev/console'

[Install]
WantedBy=multi-user.target
`,
		"usr/local/sbin/ferry-lab-ready": `#!/bin/sh
# The lab's check that the root's own network manager took the NIC over:
# networkd configured it by DHCP (the lender's answer) with ferry's
# hand-off file, under systemd with udev.
i=0
while [ $i -lt 600 ]; do
	for l in /sys/class/net/e*; do
		n=${l##*/}
		s=$(networkctl status --no-pager "$n" 2>/dev/null)
		case $s in *"(DHCP4"*)
			a=$(echo "$s" | sed -n 's/^ *Address: \([0-9.]*\) (DHCP4.*/\1/p' | head -1)
			f=$(echo "$s" | sed -n 's/^ *Network File: //p')
			k=$(echo "$s" | sed -n 's/^ *Link File: //p')
			st=$(echo "$s" | sed -n 's/^ *State: //p')
			u=$(systemctl is-active systemd-udevd)
			# A disk whose driver udev loads from this root (the lab's
			# virtio-scsi one) shows up within seconds: wait for it a little.
			j=0
			while [ $j -lt 20 ] && ! ls /sys/block | grep -q '^sd'; do j=$((j + 1)); sleep 1; done
			d=
			for b in /sys/block/*; do
				case ${b##*/} in loop*|ram*|zram*) continue ;; esac
				d="$d ${b##*/}:ro=$(cat $b/ro)"
			done
			echo "ferry-root: ready (systemd) networkd $n state=$st dhcp4=$a network_file=$f link_file=$k udevd=$u init=$(cat /proc/1/comm) disks=[$d ]" >/dev/console
			exit 0
		;; esac
	done
	i=$((i + 1))
	sleep 1
done
echo "ferry-root: networkd never configured a NIC by DHCP: $(networkctl list --no-pager 2>&1 | tr '\n' ' ')" >/dev/console
exit 1
`,
	}
	for rel, text := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if filepath.Base(filepath.Dir(p)) == "sbin" {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"ferry", "proc", "sys", "dev", "run"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	if out, err := Run("chroot", dir, "systemctl", "enable", "systemd-networkd.service", "ferry-lab-ready.service"); err != nil {
		t.Fatalf("systemctl enable in the template: %v %s", err, out)
	}
	// ifupdown's networking.service would only bring lo up here (its
	// interfaces file names no NIC); masked so that one manager owns the NIC.
	if out, err := Run("chroot", dir, "systemctl", "mask", "networking.service"); err != nil {
		t.Fatalf("systemctl mask: %v %s", err, out)
	}
	return dir
}

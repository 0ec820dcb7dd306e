package vmlab

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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
	if err := os.MkdirAll(filepath.Join(tmp, "x"), 0o755); err != nil {
		t.Fatal(err)
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
// cached base: systemd as init, udev, and manager ("networkd",
// "ifupdown" or, on NetworkManagerBase, "networkmanager") with the borrower's own DHCP configuration for the
// Ethernet NICs (ferry's hand-off in /run tells it which one carries the
// root). A unit prints RootReadySystemd, with what the manager says of
// the NIC, once it has configured it by DHCP, and RootDownSystemd when it
// is stopped.
func SystemdTemplate(t testing.TB, base, dir, manager string) string {
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
		"etc/ferry-lab-manager": manager + "\n",
		"usr/local/sbin/ferry-lab-ready": `#!/bin/sh
# The lab's check that the root's own network manager took the NIC over:
# networkd (with ferry's hand-off file) or ifupdown's dhclient configured
# it by DHCP (the lender's answer), under systemd with udev.
m=$(cat /etc/ferry-lab-manager)
i=0
while [ $i -lt 600 ]; do
	for l in /sys/class/net/e*; do
		n=${l##*/}
		a= f= k= st=
		if [ "$m" = networkd ]; then
			s=$(networkctl status --no-pager "$n" 2>/dev/null)
			case $s in *"(DHCP4"*)
				a=$(echo "$s" | sed -n 's/^ *Address: \([0-9.]*\) (DHCP4.*/\1/p' | head -1)
				f=$(echo "$s" | sed -n 's/^ *Network File: //p')
				k=$(echo "$s" | sed -n 's/^ *Link File: //p')
				st=$(echo "$s" | sed -n 's/^ *State: //p') ;;
			esac
		elif [ "$m" = networkmanager ]; then
			# NetworkManager runs and has finished starting (nm-online -s);
			# the NIC keeps B's address and, with ferry's hand-off,
			# NetworkManager leaves it alone: "unmanaged".
			if systemctl -q is-active NetworkManager && nm-online -s -q -t 5; then
				st=$(nmcli -g GENERAL.STATE device show "$n" 2>/dev/null | sed 's/^[0-9]* (\(.*\))$/\1/')
				a=$(ip -4 -o addr show dev "$n" | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -1)
				k=$(nmcli -g NAME,DEVICE connection show --active 2>/dev/null | tr '\n' ' ')
			fi
		elif [ -s /var/lib/dhcp/dhclient.$n.leases ] && kill -0 "$(cat /run/dhclient.$n.pid 2>/dev/null)" 2>/dev/null; then
			a=$(sed -n 's/^ *fixed-address \([0-9.]*\);/\1/p' /var/lib/dhcp/dhclient.$n.leases | tail -1)
			st="dhclient $(cat /run/dhclient.$n.pid)"
		fi
		case $a in ?*)
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
			if [ "$m" = networkmanager ]; then
				echo "ferry-root: ready (systemd) $m $n nm_state=$st addr=$a nm_active=[$k] udevd=$u init=$(cat /proc/1/comm) disks=[$d ]" >/dev/console
			else
				echo "ferry-root: ready (systemd) $m $n state=$st dhcp4=$a network_file=$f link_file=$k udevd=$u init=$(cat /proc/1/comm) disks=[$d ]" >/dev/console
			fi
			exit 0
		;; esac
	done
	i=$((i + 1))
	sleep 1
done
echo "ferry-root: $m never configured a NIC by DHCP: $(ip -4 addr 2>&1 | tr '\n' ' ')" >/dev/console
exit 1
`,
	}
	writeRootFiles(t, dir, files)
	// One manager owns the NICs.
	enable, mask := []string{"systemd-networkd.service"}, "networking.service"
	switch manager {
	case "networkd":
	case "ifupdown":
		enable, mask = []string{"networking.service"}, "systemd-networkd.service"
		if err := os.WriteFile(filepath.Join(dir, "etc/network/interfaces"),
			[]byte("auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "etc/systemd/network/80-borrower-dhcp.network"))
	case "networkmanager":
		// Debian's own NetworkManager.conf (ifupdown plugin with
		// managed=false, no eth0 in interfaces) plus the installer's
		// profile: NetworkManager manages eth0 unless told otherwise.
		enable, mask = []string{"NetworkManager.service"}, "systemd-networkd.service"
		os.Remove(filepath.Join(dir, "etc/systemd/network/80-borrower-dhcp.network"))
		p := filepath.Join(dir, "etc/NetworkManager/system-connections/eth0.nmconnection")
		if err := os.WriteFile(p, []byte(nmProfile), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := Run("chroot", dir, "systemctl", "mask", "networking.service"); err != nil {
			t.Fatalf("systemctl mask: %v %s", err, out)
		}
	default:
		t.Fatalf("SystemdTemplate: manager %q: want networkd, ifupdown or networkmanager", manager)
	}
	if out, err := Run(append([]string{"chroot", dir, "systemctl", "enable", "ferry-lab-ready.service"}, enable...)...); err != nil {
		t.Fatalf("systemctl enable in the template: %v %s", err, out)
	}
	if out, err := Run("chroot", dir, "systemctl", "mask", mask); err != nil {
		t.Fatalf("systemctl mask: %v %s", err, out)
	}
	return dir
}

// baseWithPackages is base with Debian packages apt-installed in a chroot,
// made once into FERRY_CACHE/roots/bookworm-NAME; marker, a path in the
// root, says it was made whole (the copy is renamed into place last).
func baseWithPackages(t testing.TB, cache, base, name, marker string, pkgs ...string) string {
	t.Helper()
	dir := filepath.Join(cache, "roots", SystemdSuite+"-"+name)
	if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
		return dir
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if out, err := Run("cp", "-a", "--reflink=auto", base, tmp); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Logf("apt-get install %s into %s (once)", strings.Join(pkgs, " "), dir)
	// Private mounts (unshare -m) vanish with the shell.
	script := `R=$1; shift; mount -t proc proc $R/proc && mount --rbind /dev $R/dev &&
		mount -t sysfs sys $R/sys && cp /etc/resolv.conf $R/etc/resolv.conf &&
		DEBIAN_FRONTEND=noninteractive chroot $R apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive chroot $R apt-get install -y -qq --no-install-recommends "$@" &&
		chroot $R apt-get clean`
	if out, err := Run(append([]string{"unshare", "-m", "sh", "-c", script, "sh", tmp}, pkgs...)...); err != nil {
		t.Fatalf("installing %s: %v\n%s", strings.Join(pkgs, " "), err, tail(out, 3000))
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeRootFiles writes a template's files (path in the root -> text),
// executable where the directory holds programs (sbin, init.d), and the
// directories ferry's state and the moved mounts land on.
func writeRootFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for rel, text := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if d := filepath.Base(filepath.Dir(p)); d == "sbin" || d == "init.d" {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"ferry", "proc", "sys", "dev", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// nmProfile is the connection a distribution's installer leaves for the
// wired NIC (Debian's installer and cloud images write one like it):
// NetworkManager would take eth0 by DHCP at start. Only ferry's
// unmanaged-devices hand-off in /run keeps it off the NIC that carries
// the root.
const nmProfile = `[connection]
id=eth0
type=ethernet
interface-name=eth0
autoconnect=true

[ipv4]
method=auto

[ipv6]
method=auto
`

package vmlab

import (
	"os"
	"regexp"
	"testing"
)

// RootReadySysvinit is the line the lab's sysvinit root prints once
// ifupdown's dhclient holds a lease on the NIC (its ferry-lab-ready rc
// script, below).
var RootReadySysvinit = regexp.MustCompile(`ferry-root: ready \(sysvinit\)[^\n]*`)

// RootDownSysvinit is the line that rc script prints when sysvinit's rc
// stops it on the way to runlevel 0: the root's own shutdown sequence
// runs (sendsigs, umountnfs.sh, umountroot and halt follow it).
var RootDownSysvinit = regexp.MustCompile(`ferry-root: sysvinit rc is stopping services`)

// SysvinitBase is the systemd base with Debian's sysvinit-core installed
// by apt in the chroot (once, into FERRY_CACHE/roots/bookworm-sysvinit):
// sysvinit as /sbin/init, its rc scripts (initscripts, sysv-rc, insserv)
// and udev's and ifupdown's own init scripts, as Debian with sysvinit-core
// (or Devuan) has them. systemd stays installed but is not PID 1: the
// keeper must go by what runs, not by what is on the disk.
func SysvinitBase(t testing.TB, cache, base string) string {
	t.Helper()
	return baseWithPackages(t, cache, base, "sysvinit", "etc/inittab", "sysvinit-core")
}

// SysvinitTemplate makes dir, a root template for the borrower, from
// SysvinitBase: sysvinit as init, udev, ifupdown taking eth0 by DHCP
// (allow-hotplug, as Debian's installer writes it), and an rc script
// that prints RootReadySysvinit once dhclient holds a lease and
// RootDownSysvinit when rc stops it at power-off.
func SysvinitTemplate(t testing.TB, base, dir string) string {
	t.Helper()
	os.RemoveAll(dir)
	if out, err := Run("cp", "-a", "--reflink=auto", base, dir); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	files := map[string]string{
		"etc/hostname":           "ferry-root\n",
		"etc/fstab":              "# the root is the borrower's NFS export, mounted by ferry's image B\n",
		"etc/network/interfaces": "auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n",
		"etc/init.d/ferry-lab-ready": `#!/bin/sh
### BEGIN INIT INFO
# Provides:          ferry-lab-ready
# Required-Start:    $network $remote_fs
# Required-Stop:     $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 6
# Short-Description: ferry lab: say on the console when ifupdown has configured the NIC
### END INIT INFO
case "$1" in
start) /usr/local/sbin/ferry-lab-ready </dev/null >/dev/null 2>&1 & ;;
stop) echo "ferry-root: sysvinit rc is stopping services ($(runlevel))" >/dev/console ;;
esac
exit 0
`,
		"usr/local/sbin/ferry-lab-ready": `#!/bin/sh
# The lab's check that the root's own network manager took the NIC over
# under sysvinit: ifupdown's dhclient got a lease (the lender's answer).
i=0
while [ $i -lt 600 ]; do
	for l in /sys/class/net/e*; do
		n=${l##*/}
		if [ -s /var/lib/dhcp/dhclient.$n.leases ] && kill -0 "$(cat /run/dhclient.$n.pid 2>/dev/null)" 2>/dev/null; then
			a=$(sed -n 's/^ *fixed-address \([0-9.]*\);/\1/p' /var/lib/dhcp/dhclient.$n.leases | tail -1)
			echo "ferry-root: ready (sysvinit) ifupdown $n dhcp4=$a dhclient=$(cat /run/dhclient.$n.pid) init=$(cat /proc/1/comm) exe=$(readlink /proc/1/exe) runlevel=$(runlevel | tr ' ' /)" >/dev/console
			exit 0
		fi
	done
	i=$((i + 1))
	sleep 1
done
echo "ferry-root: ifupdown never configured a NIC by DHCP: $(ip -4 addr 2>&1 | tr '\n' ' ')" >/dev/console
exit 1
`,
	}
	writeRootFiles(t, dir, files)
	if out, err := Run("chroot", dir, "update-rc.d", "ferry-lab-ready", "defaults"); err != nil {
		t.Fatalf("update-rc.d in the template: %v %s", err, out)
	}
	return dir
}

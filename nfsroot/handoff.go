package nfsroot

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// RootLink is the NIC that carries the NFS root and the tunnel, as image B
// configured it, for HandOff.
type RootLink struct {
	Name    string
	MAC     net.HardwareAddr
	Addr    net.IP     // IPv4
	Mask    net.IPMask // 4 bytes
	Gateway net.IP     // nil: none
	Server  net.IP     // the NFS server, for initramfs-tools' ROOTSERVER
}

// HandOff tells the borrower's network manager, in each one's own words,
// that link carries the root: files under run (the initramfs's /run,
// which SwitchRoot moves into the new root, so they are in the root's
// /run before its init starts). Nothing here lives on the root's disk:
// the root template stays what the borrower made it.
//
//   - systemd-networkd: 10-ferry-root-NAME.network, sorted before the
//     root's own, takes the NIC with DHCP (the lender answers an enrolled
//     server with the address it holds) and KeepConfiguration=yes, so
//     nothing B configured (address, routes, the keeper's virtual IP) is
//     dropped when networkd starts, stops or loses the lease; a .link of
//     the same name keeps the NIC's name and MAC (udev would rename it to
//     a "predictable" name otherwise, which fails on a busy link or
//     breaks the root's configuration); networkd.conf.d stops networkd
//     from removing routes and rules it did not make (the tunnel's).
//   - initramfs-tools' hand-off, /run/net-NAME.conf (klibc ipconfig's
//     variables), read by Debian's and Ubuntu's tools that ask how the
//     initramfs brought a NIC up.
//   - NetworkManager: conf.d/10-ferry-root.conf lists the NIC as
//     unmanaged, NetworkManager's word for "someone else owns it".
//   - ifupdown under systemd: drop-ins for networking.service, whose
//     ExecStop then leaves the NIC out of `ifdown -a`, and for
//     ifup@NAME.service (allow-hotplug), which then runs no ifdown at
//     stop: ifdown would release the DHCP lease and flush the addresses
//     before the root is read-only. `ifup` with `inet dhcp` may still run
//     its DHCP client on the NIC. Only when systemd is the root's init
//     (systemd): /run/systemd/system existing is how every program tells
//     that systemd booted (sd_booted(3)), and under sysvinit Debian's rc
//     scripts would hand each start to systemctl, which fails. sysvinit's
//     own networking script leaves the NICs up while a network file
//     system is mounted.
func HandOff(run string, link RootLink, systemd bool) error {
	if link.Name == "" || strings.ContainsAny(link.Name, "/\n\x00") || len(link.MAC) != 6 || link.Addr.To4() == nil || len(link.Mask) != 4 {
		return fmt.Errorf("hand-off: want a NIC name, a MAC and an IPv4 address with mask, got %q %v %v %v", link.Name, link.MAC, link.Addr, link.Mask)
	}
	mac := link.MAC.String()
	head := "# Written by ferry (image B): " + link.Name + " carries the NFS root and the tunnel.\n# See ferry's docs/ARCHITECTURE.md, \"The root's network manager\".\n"
	files := map[string]string{
		"systemd/network/10-ferry-root-" + link.Name + ".link": head + "[Match]\nMACAddress=" + mac +
			"\n\n[Link]\nNamePolicy=\nName=" + link.Name + "\nMACAddressPolicy=none\n",
		"systemd/network/10-ferry-root-" + link.Name + ".network": head + "[Match]\nMACAddress=" + mac + "\nName=" + link.Name +
			"\n\n[Link]\nRequiredForOnline=yes\n\n[Network]\nDHCP=ipv4\nKeepConfiguration=yes\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n" +
			"\n[DHCPv4]\nClientIdentifier=mac\nSendRelease=no\nUseHostname=no\n",
		"systemd/networkd.conf.d/10-ferry-root.conf": head + "[Network]\nManageForeignRoutes=no\nManageForeignRoutingPolicyRules=no\n",
		"net-" + link.Name + ".conf":                 netConf(link),
		"NetworkManager/conf.d/10-ferry-root.conf":   head + "[keyfile]\nunmanaged-devices=mac:" + mac + "\n",
		"systemd/system/networking.service.d/10-ferry-root.conf": head + "[Service]\nExecStop=\nExecStop=/sbin/ifdown -a --read-environment --exclude=lo --exclude=" +
			link.Name + "\n",
		"systemd/system/ifup@" + link.Name + ".service.d/10-ferry-root.conf": head + "[Service]\nExecStop=\n",
	}
	for rel, text := range files {
		if !systemd && strings.HasPrefix(rel, "systemd/system/") {
			continue
		}
		p := filepath.Join(run, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("hand-off: %w", err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return fmt.Errorf("hand-off: %w", err)
		}
	}
	return nil
}

// netConf is initramfs-tools' /run/net-NAME.conf, as its
// configure_networking leaves it after ipconfig.
func netConf(l RootLink) string {
	ip4 := func(ip net.IP) string {
		if ip.To4() == nil {
			return "0.0.0.0"
		}
		return ip.To4().String()
	}
	bcast := make(net.IP, 4)
	for i, b := range l.Addr.To4() {
		bcast[i] = b | ^l.Mask[i]
	}
	return fmt.Sprintf("DEVICE='%s'\nPROTO='none'\nIPV4ADDR='%s'\nIPV4BROADCAST='%s'\nIPV4NETMASK='%s'\nIPV4GATEWAY='%s'\n"+
		"IPV4DNS0='0.0.0.0'\nIPV4DNS1='0.0.0.0'\nHOSTNAME=''\nDNSDOMAIN=''\nNISDOMAIN=''\nROOTSERVER='%s'\nROOTPATH=''\nfilename=''\n",
		l.Name, ip4(l.Addr), bcast, net.IP(l.Mask).String(), ip4(l.Gateway), ip4(l.Server))
}

// ShutdownHandOff copies the ferry binary bin to run/initramfs/shutdown:
// systemd-shutdown, after remounting everything read-only, pivots into
// /run/initramfs and execs it as PID 1 instead of powering off itself
// (the keeper's last word, keeper/final.go). Other inits ignore it. A root
// whose dracut-shutdown.service unpacks its own initramfs there replaces
// it; the keeper then falls back to catching systemd-shutdown in the act.
func ShutdownHandOff(run, bin string) error {
	dir := filepath.Join(run, "initramfs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("shutdown hand-off: %w", err)
	}
	src, err := os.Open(bin)
	if err != nil {
		return fmt.Errorf("shutdown hand-off: %w", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(dir, "shutdown"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return fmt.Errorf("shutdown hand-off: %w", err)
	}
	if err := copyContents(dst, src); err != nil {
		dst.Close()
		os.Remove(dst.Name())
		return fmt.Errorf("shutdown hand-off: copy %s to %s: %w", bin, dst.Name(), err)
	}
	return dst.Close()
}

// SpareKeeper lists pid (the keeper) in run/sendsigs.omit.d/ferry-keeper,
// where Debian's sysvinit rc (sendsigs), and Devuan's after it, look for
// the processes that a root on the network needs until the end (iscsid,
// nbd-client and multipathd register there): its killall5 of every other
// process comes before the root is read-only, and a keeper killed then
// takes the root's tunnel with it. systemd spares it by its "@" argv[0]
// instead; other inits ignore the file. pid is the process PID 1
// started: the keeper's supervisor, which lists the keeper proper, its
// child, itself (SpareProcess).
func SpareKeeper(run string, pid int) error { return SpareProcess(run, "ferry-keeper", pid) }

// SpareProcess lists pid in run/sendsigs.omit.d/name, replacing what the
// file held (see SpareKeeper).
func SpareProcess(run, name string, pid int) error {
	dir := filepath.Join(run, "sendsigs.omit.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sendsigs hand-off: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("%d\n", pid)), 0o644); err != nil {
		return fmt.Errorf("sendsigs hand-off: %w", err)
	}
	return nil
}

// InitIsSystemd reports whether init, as a path in root, resolves (inside
// root) to systemd: /sbin/init -> /lib/systemd/systemd.
func InitIsSystemd(root, init string) bool {
	p, err := resolveIn(root, init)
	return err == nil && strings.HasPrefix(filepath.Base(p), "systemd")
}

package nfsroot

import (
	"bytes"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What the root's network managers find in /run: networkd's .network
// keeps B's configuration and matches the NIC by MAC, its .link keeps the
// name, initramfs-tools' net-NAME.conf has the address, NetworkManager
// leaves the NIC alone.
func TestHandOffTellsEachNetworkManagerWhichNICCarriesTheRoot(t *testing.T) {
	run := t.TempDir()
	mac, _ := net.ParseMAC("52:54:00:50:00:10")
	err := HandOff(run, RootLink{Name: "eth0", MAC: mac, Addr: net.ParseIP("10.50.0.100"), Mask: net.CIDRMask(24, 32),
		Gateway: net.ParseIP("10.50.0.1"), Server: net.ParseIP("10.52.0.1")}, true)
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string][]string{
		"systemd/network/10-ferry-root-eth0.network": {"MACAddress=52:54:00:50:00:10", "KeepConfiguration=yes", "DHCP=ipv4"},
		"systemd/network/10-ferry-root-eth0.link":    {"MACAddress=52:54:00:50:00:10", "Name=eth0"},
		"systemd/networkd.conf.d/10-ferry-root.conf": {"ManageForeignRoutes=no"},
		"net-eth0.conf": {"DEVICE='eth0'", "IPV4ADDR='10.50.0.100'", "IPV4BROADCAST='10.50.0.255'", "IPV4NETMASK='255.255.255.0'", "IPV4GATEWAY='10.50.0.1'", "ROOTSERVER='10.52.0.1'"},
		"NetworkManager/conf.d/10-ferry-root.conf":               {"unmanaged-devices=mac:52:54:00:50:00:10"},
		"systemd/system/networking.service.d/10-ferry-root.conf": {"ExecStop=\n", "--exclude=eth0"},
		"systemd/system/ifup@eth0.service.d/10-ferry-root.conf":  {"ExecStop=\n"},
	} {
		b, err := os.ReadFile(filepath.Join(run, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %q:\n%s", rel, w, b)
			}
		}
	}
	if err := HandOff(run, RootLink{Name: "../x", MAC: mac, Addr: net.ParseIP("10.50.0.100"), Mask: net.CIDRMask(24, 32)}, true); err == nil {
		t.Error("a NIC name with a slash was accepted")
	}
}

// Under another init, /run/systemd/system must not exist: Debian's rc
// scripts (lsb init-functions) and sd_booted(3) take it to mean that
// systemd booted, and hand every start to systemctl, which fails.
func TestHandOffWritesNoSystemdUnitsForAnotherInit(t *testing.T) {
	run := t.TempDir()
	mac, _ := net.ParseMAC("52:54:00:50:00:10")
	if err := HandOff(run, RootLink{Name: "eth0", MAC: mac, Addr: net.ParseIP("10.50.0.100"), Mask: net.CIDRMask(24, 32)}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(run, "systemd", "system")); !os.IsNotExist(err) {
		t.Fatalf("/run/systemd/system made for a root whose init is not systemd (%v)", err)
	}
	for _, rel := range []string{"net-eth0.conf", "NetworkManager/conf.d/10-ferry-root.conf", "systemd/network/10-ferry-root-eth0.network"} {
		if _, err := os.Stat(filepath.Join(run, rel)); err != nil {
			t.Errorf("%s: %v", rel, err)
		}
	}
}

func TestInitIsSystemdResolvesInTheRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"sbin", "lib/systemd", "usr/sbin"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "lib/systemd/systemd"), nil, 0o755)
	os.WriteFile(filepath.Join(root, "usr/sbin/init"), nil, 0o755) // sysvinit's
	os.Symlink("/lib/systemd/systemd", filepath.Join(root, "sbin/init"))
	os.Symlink("../usr/sbin/init", filepath.Join(root, "sbin/sysv"))
	for init, want := range map[string]bool{"/sbin/init": true, "/lib/systemd/systemd": true, "/sbin/sysv": false, "/usr/sbin/init": false, "/sbin/none": false} {
		if got := InitIsSystemd(root, init); got != want {
			t.Errorf("InitIsSystemd(%s) = %v, want %v", init, got, want)
		}
	}
}

// systemd-shutdown execs /run/initramfs/shutdown only if it is executable.
func TestShutdownHandOffPlacesAnExecutableCopy(t *testing.T) {
	run, bin := t.TempDir(), filepath.Join(t.TempDir(), "ferry")
	os.WriteFile(bin, []byte("\x7fELF ferry"), 0o755)
	if err := ShutdownHandOff(run, bin); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(run, "initramfs", "shutdown"))
	if err != nil || fi.Mode().Perm()&0o111 == 0 || fi.Size() != 10 {
		t.Fatalf("run/initramfs/shutdown: %v %v, want an executable copy of the binary", fi, err)
	}
}

// The binary is copied whole (sendfile in a loop), whatever its size.
func TestShutdownHandOffCopiesTheWholeBinary(t *testing.T) {
	run, bin := t.TempDir(), filepath.Join(t.TempDir(), "ferry")
	want := make([]byte, 3<<20+12345)
	rand.Read(want)
	if err := os.WriteFile(bin, want, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := ShutdownHandOff(run, bin); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(run, "initramfs", "shutdown"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("run/initramfs/shutdown: %d bytes (%v), want the %d bytes of the binary", len(got), err, len(want))
	}
	// A second hand-off refuses to overwrite (O_EXCL) and leaves the copy.
	if err := ShutdownHandOff(run, bin); err == nil {
		t.Error("second hand-off succeeded over an existing file")
	}
	if got, _ := os.ReadFile(filepath.Join(run, "initramfs", "shutdown")); !bytes.Equal(got, want) {
		t.Error("second hand-off changed the first copy")
	}
}

// Debian's /etc/init.d/sendsigs reads every file in /run/sendsigs.omit.d
// as PIDs to pass to killall5 -o.
func TestSpareKeeperListsItsPIDForSendsigs(t *testing.T) {
	run := t.TempDir()
	if err := SpareKeeper(run, 4242); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(run, "sendsigs.omit.d", "ferry-keeper"))
	if err != nil || string(b) != "4242\n" {
		t.Fatalf("sendsigs.omit.d/ferry-keeper = %q, %v; want the PID alone on a line", b, err)
	}
	if err := SpareKeeper(filepath.Join(run, "sendsigs.omit.d", "ferry-keeper"), 1); err == nil {
		t.Fatal("no error for a run directory that is a file")
	}
	// The keeper proper beside its supervisor; a restarted one replaces it.
	for _, pid := range []int{5151, 6161} {
		if err := SpareProcess(run, "ferry-keeper-proper", pid); err != nil {
			t.Fatal(err)
		}
	}
	b, err = os.ReadFile(filepath.Join(run, "sendsigs.omit.d", "ferry-keeper-proper"))
	if err != nil || string(b) != "6161\n" {
		t.Fatalf("sendsigs.omit.d/ferry-keeper-proper = %q, %v; want the last PID alone", b, err)
	}
}

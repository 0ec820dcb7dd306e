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
		Gateway: net.ParseIP("10.50.0.1"), Server: net.ParseIP("10.52.0.1")})
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
	if err := HandOff(run, RootLink{Name: "../x", MAC: mac, Addr: net.ParseIP("10.50.0.100"), Mask: net.CIDRMask(24, 32)}); err == nil {
		t.Error("a NIC name with a slash was accepted")
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

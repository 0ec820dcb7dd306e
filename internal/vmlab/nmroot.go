package vmlab

import (
	"os"
	"path/filepath"
	"testing"
)

// NetworkManagerBase is the systemd base with Debian's network-manager
// package installed by apt in the chroot (once, into
// FERRY_CACHE/roots/bookworm-networkmanager). debootstrap --include
// cannot take it: its resolver gives up on network-manager's virtual
// dependencies, which apt resolves.
func NetworkManagerBase(t testing.TB, cache, base string) string {
	t.Helper()
	dir := filepath.Join(cache, "roots", SystemdSuite+"-networkmanager")
	if _, err := os.Stat(filepath.Join(dir, "usr", "sbin", "NetworkManager")); err == nil {
		return dir
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if out, err := Run("cp", "-a", "--reflink=auto", base, tmp); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Logf("apt-get install network-manager into %s (once)", dir)
	// Private mounts (unshare -m) vanish with the shell.
	if out, err := Run("unshare", "-m", "sh", "-c", `R=$1; mount -t proc proc $R/proc && mount --rbind /dev $R/dev &&
		mount -t sysfs sys $R/sys && cp /etc/resolv.conf $R/etc/resolv.conf &&
		DEBIAN_FRONTEND=noninteractive chroot $R apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive chroot $R apt-get install -y -qq --no-install-recommends network-manager &&
		chroot $R apt-get clean`, "sh", tmp); err != nil {
		t.Fatalf("installing network-manager: %v\n%s", err, tail(out, 3000))
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return dir
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

package vmlab

import "testing"

// NetworkManagerBase is the systemd base with Debian's network-manager
// package installed by apt in the chroot (once, into
// FERRY_CACHE/roots/bookworm-networkmanager). debootstrap --include
// cannot take it: its resolver gives up on network-manager's virtual
// dependencies, which apt resolves.
func NetworkManagerBase(t testing.TB, cache, base string) string {
	t.Helper()
	return baseWithPackages(t, cache, base, "networkmanager", "usr/sbin/NetworkManager", "network-manager")
}

package netcfg

import (
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestHasCarrier covers the states a link shows between its driver's
// probe and the DHCP exchange. The row that matters most is "down with
// LOWER_UP": Debian 6.1's linkwatch leaves a carrier that came while the
// link was down in operstate down for up to a second after ferry sets the
// link up, and waiting for the operstate cost A's network phase that
// second.
func TestHasCarrier(t *testing.T) {
	const up, lower, dormant = unix.IFF_UP, unix.IFF_LOWER_UP, unix.IFF_DORMANT
	for _, c := range []struct {
		name  string
		oper  netlink.LinkOperState
		flags uint32
		want  bool
	}{
		{"operstate up", netlink.OperUp, up | lower, true},
		{"no operstate (tun, some virtual NICs), carrier bit set", netlink.OperUnknown, up | lower, true},
		{"linkwatch not yet run: operstate down, carrier bit set", netlink.OperDown, up | lower, true},
		{"no carrier", netlink.OperDown, up, false},
		{"no operstate and no carrier bit", netlink.OperUnknown, up, false},
		{"lower layer down", netlink.OperLowerLayerDown, up, false},
		{"dormant (802.1X pending), carrier bit set", netlink.OperDormant, up | lower | dormant, false},
		{"dormant flag before linkwatch ran", netlink.OperDown, up | lower | dormant, false},
		{"testing", netlink.OperTesting, up | lower, false},
	} {
		if got := hasCarrier(c.oper, c.flags); got != c.want {
			t.Errorf("%s: hasCarrier(%v, %#x) = %v, want %v", c.name, c.oper, c.flags, got, c.want)
		}
	}
}

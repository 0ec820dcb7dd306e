package esp

import (
	"sync/atomic"

	"ferry/ipsec/dataplane"
)

// meter counts one SA's traffic against its byte and packet limits; each
// limit fires once.
type meter struct {
	lim       dataplane.Lifetime
	bytes     atomic.Uint64
	packets   atomic.Uint64
	softFired atomic.Bool
	hardFired atomic.Bool
}

// add counts one packet of n bytes and says whether a limit was crossed now.
func (m *meter) add(n int) (dataplane.ExpireKind, string) {
	b, p := m.bytes.Add(uint64(n)), m.packets.Add(1)
	if r := over(b, p, m.lim.HardBytes, m.lim.HardPackets); r != "" && m.hardFired.CompareAndSwap(false, true) {
		return dataplane.Hard, r
	}
	if r := over(b, p, m.lim.SoftBytes, m.lim.SoftPackets); r != "" && m.softFired.CompareAndSwap(false, true) {
		return dataplane.Soft, r
	}
	return 0, ""
}

func over(b, p, limB, limP uint64) string {
	switch {
	case limB != 0 && b >= limB:
		return "bytes"
	case limP != 0 && p >= limP:
		return "packets"
	}
	return ""
}

package esp

import "testing"

func TestTSOMaxSegsSealsIntoOneUDPGSOSend(t *testing.T) {
	for _, mtu := range []int{576, 1280, tunMTU(1500), 1500, tunMTU(9000), 9000, 65000} {
		k := tsoMaxSegs(mtu)
		if k < 1 || k > gsoMaxSegs || (k > 1 && k*espLen(mtu) > gsoMaxBytes) {
			t.Errorf("mtu %d: %d segments of %d ESP bytes do not fit one UDP GSO send (%d bytes, %d segments)",
				mtu, k, espLen(mtu), gsoMaxBytes, gsoMaxSegs)
		}
	}
	if k := tsoMaxSegs(tunMTU(1500)); k < 40 {
		t.Errorf("a 1500-byte path gets %d segments per super-segment; too few to keep batches large", k)
	}
}

package kmod

import (
	"slices"
	"testing"
)

// drbg's self-tests run when it registers: each one whose algorithm it
// cannot build then fails with a kernel warning dump on the console
// (hmac(sha512) for the HMAC variants, ctr(aes) for the CTR ones, a
// jitterentropy_rng to seed from). Nothing loads those on demand in
// ferry's initramfs, so they must come before drbg; seqiv and echainiv,
// which take drbg as their stdrng, after it.
func TestESPModulesLoadWhatDrbgsSelfTestsNeedFirst(t *testing.T) {
	m := ESPModules()
	d := slices.Index(m, "drbg")
	for _, before := range []string{"sha512_generic", "jitterentropy_rng", "ctr"} {
		if i := slices.Index(m, before); i < 0 || i > d {
			t.Errorf("%s at %d, drbg at %d in %v: want it before drbg", before, i, d, m)
		}
	}
	for _, after := range []string{"seqiv", "echainiv"} {
		if i := slices.Index(m, after); i < d {
			t.Errorf("%s at %d, drbg at %d in %v: want it after drbg", after, i, d, m)
		}
	}
}

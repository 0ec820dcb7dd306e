package kmod

import (
	"errors"
)

// ESPModules lists the modules kernel IPsec ESP needs, in the order they
// must load when nothing answers the kernel's module requests (no
// /sbin/modprobe in an initramfs whose init is ferry): drbg's self-tests
// need hmac(sha512), a jitterentropy_rng (which needs sha3 on newer
// kernels) and, for its CTR variants, the ctr template (ctr(aes)) already
// there, and seqiv's IV generator takes drbg as its stdrng. Loaded in
// sorted order, drbg comes first, fails its self-test and no ESP state can
// be built; loaded before ctr, its drbg_*_ctr_aes* self-tests print "alg:
// drbg: Failed to reset rng" and a kernel warning each (Debian's 6.1).
// The agent loads them, `ferry initrd build --esp` carries them, and the
// borrower's catalogue bundles them for image B.
func ESPModules() []string {
	return []string{"esp4", "xfrm_user", "sha512_generic", "sha3_generic", "jitterentropy_rng", "ctr", "aesni_intel",
		"drbg", "gcm", "ghash_generic", "ghash_clmulni_intel", "seqiv", "echainiv"}
}

// ResolveAvailable is Resolve for names that a kernel may have built in or
// lack altogether: a requested module that is not under dir is returned in
// missing instead of failing, while a missing dependency of one that is
// there, or a cycle, is still an error. It indexes dir once.
func ResolveAvailable(dir string, names []string) (mods []Module, missing []string, err error) {
	ix, err := newIndex(dir)
	if err != nil {
		return nil, nil, err
	}
	o := newOrderer(ix)
	var errs []error
	for _, n := range names {
		if _, found, _ := ix.module(n); !found && !ix.builtin[NormalizeName(n)] {
			missing = append(missing, n)
			continue
		}
		if err := o.visit(n, ""); err != nil {
			errs = append(errs, err)
		}
	}
	return o.order, missing, errors.Join(errs...)
}

package agent

import (
	"context"
	"fmt"
	"log/slog"

	"ferry/keeper"
	"ferry/kmod"
)

// dataPlaneParam is the kernel command line parameter that chooses where
// the tunnel's ESP runs: auto (the default: the kernel's XFRM where the
// kernel has ESP, else user space), kernel or user. A reads it; B follows
// the choice A carried in its state.
const dataPlaneParam = "ferry.dataplane"

// dataPlane is the data-plane choice of this boot.
func (a *Agent) dataPlane() (keeper.DataPlane, error) {
	if a.state != nil {
		p, err := keeper.ParseDataPlane(string(a.state.DataPlane))
		if err != nil {
			return "", fmt.Errorf("%s field dataplane: %w", StatePath, err)
		}
		return p, nil
	}
	v, _ := a.cmd.Get(dataPlaneParam)
	p, err := keeper.ParseDataPlane(v)
	if err != nil {
		return "", fmt.Errorf("kernel command line %s: %w", dataPlaneParam, err)
	}
	return p, nil
}

// espLoadOrder lists the kernel's ESP modules in the order they must load
// when nothing answers the kernel's module requests (no /sbin/modprobe in
// an initramfs whose init is ferry): drbg's self-test needs hmac(sha512)
// and a jitterentropy_rng (which needs sha3) already there, and seqiv's
// IV generator takes drbg as its stdrng. Loaded in the default sorted
// order, drbg comes first, fails its self-test and ESP states cannot be
// built. scripts/ipsec-guest.sh proved this order on Debian's kernel.
func espLoadOrder() []string {
	return []string{"esp4", "xfrm_user", "sha512_generic", "sha3_generic", "jitterentropy_rng", "drbg",
		"gcm", "ctr", "ghash_generic", "ghash_clmulni_intel", "aesni_intel", "seqiv", "echainiv"}
}

// loadESPModules loads those of espLoadOrder that dir carries, in that
// order with their dependencies, before everything else is loaded in
// sorted order. A module missing from dir is skipped: it may be built in,
// and the tunnel falls back to user-space ESP when the kernel lacks it.
func loadESPModules(ctx context.Context, dir string, log *slog.Logger) {
	var mods []kmod.Module
	seen := map[string]bool{}
	for _, n := range espLoadOrder() {
		ms, err := kmod.Resolve(dir, []string{n})
		if err != nil {
			log.Debug("ESP module not carried", "module", n, "err", err)
			continue
		}
		for _, m := range ms {
			if k := kmod.NormalizeName(m.Name); !seen[k] {
				seen[k] = true
				mods = append(mods, m)
			}
		}
	}
	if len(mods) == 0 {
		return
	}
	loaded, err := kmod.Loader{Log: log}.Load(ctx, mods)
	if err != nil {
		log.Warn("ESP modules: some failed to load (the tunnel may fall back to user-space ESP)", "err", err)
	}
	log.Info("ESP modules loaded first", "count", len(loaded))
}

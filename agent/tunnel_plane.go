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

// loadESP loads the ESP modules resolved from a tree (kmod.ESPModules, in
// that order with their dependencies) before anything else that could
// need part of them (B: first; A: after the drivers that need none,
// modules_a.go). A module
// missing is skipped: it may be built in, and the tunnel falls back to
// user-space ESP when the kernel lacks it.
func loadESP(ctx context.Context, mods []kmod.Module, missing []string, err error, log *slog.Logger) {
	if len(missing) > 0 {
		log.Debug("ESP modules not carried (built in, or the kernel lacks them)", "modules", missing)
	}
	if err != nil {
		log.Warn("ESP modules: cannot resolve (the tunnel may fall back to user-space ESP)", "err", err)
	}
	if len(mods) == 0 {
		return
	}
	loaded, err := kmod.Loader{Log: log}.Load(ctx, mods)
	if err != nil {
		log.Warn("ESP modules: some failed to load (the tunnel may fall back to user-space ESP)", "err", err)
	}
	log.Info("ESP modules loaded", "count", len(loaded))
}

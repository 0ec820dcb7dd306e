package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"ferry/kmod"
)

// Image A's modules phase loads what the next phases need at once: the
// drivers of the devices present (coldplug, as B does: the NIC for the
// network phase, the disks' for disks-ro) and tun. The ESP modules are
// needed only by tunnel-a, after the network and enroll phases: they load
// in the background meanwhile (0.3 s under TCG), in their order
// (kmod.ESPModules), and tunnel-a waits for them (waitModules).
//
// That order is why the coldplug comes from a tree without ESP's modules
// and without every driver that needs one of them (kmod.Tree.Except): a
// CPU-feature driver such as aesni_intel matches the CPU's modalias, and
// any part of ESP loaded before the parts its self-tests need breaks it
// (drbg before sha512_generic or ctr; docs/LAB.md). Those drivers load
// after ESP, in the background, and a disk that shows up then is marked
// read-only by the disk watch (disks-ro).

// loadModulesA is A's modules phase.
func (a *Agent) loadModulesA(ctx context.Context) error {
	rel, err := kmod.Release()
	if err != nil {
		return err
	}
	dir := filepath.Join("/lib/modules", rel)
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		a.log.Warn("no modules to load", "dir", dir)
		return nil
	}
	tree, err := kmod.OpenTree(dir)
	if err != nil {
		return err
	}
	n, err := coldplug(ctx, tree.Except(kmod.ESPModules()), "/sys", aModules, a.log)
	if err != nil {
		a.log.Warn("coldplug incomplete", "dir", dir, "err", err)
	}
	a.log.Info("modules loaded for the devices present", "count", n)
	a.espLoad = startBackground(func() error {
		loadESPAndDependents(ctx, tree, "/sys", a.log)
		return nil
	})
	return nil
}

// loadESPAndDependents loads the ESP modules in their order, then the
// drivers of the devices present that need part of them (one more look
// at the devices, from the whole tree: what is live already is not
// loaded again). It runs on a goroutine of its own (espLoad), whose tree
// it is from then on. Failures are warnings, as in B: the tunnel falls
// back to user-space ESP, and a device without its driver fails the phase
// that needs it.
func loadESPAndDependents(ctx context.Context, tree *kmod.Tree, sysfs string, log *slog.Logger) {
	start := time.Now()
	mods, missing, err := tree.ResolveAvailable(kmod.ESPModules())
	loadESP(ctx, mods, missing, err, log)
	var drivers []kmod.Module
	mas, err := kmod.DeviceModaliases(sysfs)
	if err == nil {
		drivers, err = tree.Resolve(mas, nil)
	}
	if err != nil {
		log.Warn("drivers that need ESP's modules: cannot resolve some", "err", err)
	}
	if _, err := (kmod.Loader{Log: log}).Load(ctx, drivers); err != nil {
		log.Warn("drivers that need ESP's modules: some failed", "err", err)
	}
	log.Info("ESP modules loaded in the background", "took", time.Since(start).Round(time.Millisecond))
}

// waitModules waits for the modules A loads in the background (ESP's),
// if any: tunnel-a needs them, and nothing may still be loading at the
// jump to B.
func (a *Agent) waitModules(ctx context.Context) error {
	if a.espLoad == nil {
		return nil
	}
	return a.espLoad.wait(ctx)
}

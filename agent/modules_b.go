package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"ferry/kmod"
)

// B's kernel is the borrower's: its release is in general not A's, and
// A's modules cannot load into it. B therefore loads its drivers as its
// own initrd would: from initrd(B)'s module tree for the running release,
// every module whose alias matches a device present (udev's coldplug),
// plus the modules A appended under ModuleDir: the borrower's bundle for
// what B's initrd lacks (ESP, tun, ...), or A's own when B runs A's
// release.

// ownModuleDirs are where initramfs-tools and dracut put the modules of
// the initrd's kernel, merged-/usr first.
var ownModuleDirs = []string{"/usr/lib/modules", "/lib/modules"}

// nfsModules are loaded from B's tree when it has them: the root is
// mounted through them, and nothing answers the kernel's module requests
// once ferry is init (no udev, perhaps no modprobe). tcp_diag (with
// inet_diag) is sock_diag for TCP: the keeper resets through it the NFS
// client's connection that still backs off when the tunnel comes back
// (keeper/stalled.go).
var nfsModules = []string{"af_packet", "sunrpc", "nfs", "nfsv4", "nfsv3", "tcp_diag"}

// coldplugRounds bounds the rounds: a bus driver (virtio_pci) loaded in
// one round makes the devices (virtio0) whose drivers the next loads.
const coldplugRounds = 4

// coldplugSettle is how long coldplug waits, once, for devices a bus
// driver registers after its finit_module returned (asynchronous probing)
// before it stops. Devices probed synchronously (PCI, virtio) are there
// when the load returns and are seen without waiting; a fixed wait after
// every round cost 0.2 s a round under TCG.
const coldplugSettle = 100 * time.Millisecond

// ownModuleDir is initrd(B)'s module directory for release, or "".
func ownModuleDir(root, release string) string {
	for _, d := range ownModuleDirs {
		p := filepath.Join(root, d, release)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
	}
	return ""
}

// loadModulesB loads B's drivers. Failures of single modules are logged,
// as udev does: a NIC that does not come up fails the network phase with
// its own message. initrd(B)'s tree and ModuleDir are one index: the
// bundle holds only what initrd(B) lacks (catalog), so its modules'
// dependencies may be in initrd(B)'s tree.
func (a *Agent) loadModulesB(ctx context.Context) error {
	rel, err := kmod.Release()
	if err != nil {
		return err
	}
	var dirs []string
	own := ownModuleDir("/", rel)
	if own != "" {
		dirs = append(dirs, own)
	} else {
		a.log.Warn("initrd(B) has no module tree for its kernel", "release", rel, "looked", ownModuleDirs)
	}
	_, cerr := os.Stat(ModuleDir)
	carried := cerr == nil
	if carried {
		dirs = append(dirs, ModuleDir)
	}
	if len(dirs) == 0 {
		useFirmwareDir("/", a.log)
		return nil
	}
	tree, err := kmod.OpenTree(dirs...)
	if err != nil {
		return err
	}
	// ESP first, in its order (kmod.ESPModules), before anything could
	// pull parts of it in out of order.
	mods, missing, err := tree.ResolveAvailable(kmod.ESPModules())
	loadESP(ctx, mods, missing, err, a.log)
	useFirmwareDir("/", a.log)
	n, err := coldplug(ctx, tree, "/sys", nfsModules, a.log)
	if err != nil {
		a.log.Warn("coldplug incomplete", "dirs", dirs, "err", err)
	}
	a.log.Info("modules loaded for the devices present", "dirs", dirs, "count", n)
	if !carried {
		return nil
	}
	// What A appended, all of it: A's own modules (B runs A's release) or
	// the borrower's bundle.
	mods, err = tree.Resolve(nil, tree.NamesIn(ModuleDir))
	if err != nil {
		a.log.Warn("carried modules: cannot resolve some", "err", err)
	}
	loaded, err := kmod.Loader{Log: a.log}.Load(ctx, mods)
	if err != nil {
		a.log.Warn("carried modules: some failed", "err", err)
	}
	a.log.Info("carried modules loaded", "count", len(loaded))
	// Loaded modules live in kernel memory: free the RAM the files hold.
	return os.RemoveAll(ModuleDir)
}

// coldplug loads, from tree, the drivers of the devices under sysfs, in
// rounds until no new device needs one, and the named modules (those the
// tree has) once the devices' rounds found nothing new: the NIC's driver
// is then in early, and its carrier (which the kernel's linkwatch reports
// up to 1 s after the device registers) comes while the named ones (B's
// NFS client, 1.5 s under TCG) load, instead of during the network phase.
func coldplug(ctx context.Context, tree *kmod.Tree, sysfs string, names []string, log *slog.Logger) (int, error) {
	done := map[string]bool{}
	var errs []error
	fresh := func(mods []kmod.Module, err error) []kmod.Module {
		if err != nil {
			errs = append(errs, err)
		}
		return slices.DeleteFunc(mods, func(m kmod.Module) bool { return done[kmod.NormalizeName(m.Name)] })
	}
	load := func(round int, mods []kmod.Module) {
		for _, m := range mods {
			done[kmod.NormalizeName(m.Name)] = true
		}
		loaded, err := kmod.Loader{Log: log}.Load(ctx, mods)
		if err != nil {
			errs = append(errs, err)
		}
		log.Debug("coldplug round", "round", round, "modules", len(mods), "loaded", len(loaded))
	}
	settled := false
	for round := 0; round < coldplugRounds && ctx.Err() == nil; {
		mas, err := kmod.DeviceModaliases(sysfs)
		if err != nil {
			return len(done), err
		}
		mods := fresh(tree.Resolve(mas, nil))
		if len(mods) == 0 && names != nil {
			mods, names = fresh(tree.Resolve(nil, names)), nil
			// Their loading is the moment asynchronous probes get.
			settled = len(mods) > 0
		}
		if len(mods) == 0 {
			if settled {
				break
			}
			// Nothing new: give asynchronous probes one moment, then
			// look a last time.
			settled = true
			select {
			case <-ctx.Done():
			case <-time.After(coldplugSettle):
			}
			continue
		}
		load(round, mods)
		round++
	}
	if names != nil && ctx.Err() == nil {
		load(coldplugRounds, fresh(tree.Resolve(nil, names)))
	}
	return len(done), errors.Join(errs...)
}

// useFirmwareDir points the kernel's firmware loader at initrd(B)'s
// firmware when the distribution keeps it only under /usr/lib/firmware
// (the kernel looks in /lib/firmware): a NIC driver asks for its blobs
// there while ferry, not udev, is init.
func useFirmwareDir(root string, log *slog.Logger) {
	if _, err := os.Stat(filepath.Join(root, "lib/firmware")); err == nil {
		return
	}
	fw := filepath.Join(root, "usr/lib/firmware")
	if st, err := os.Stat(fw); err != nil || !st.IsDir() {
		return
	}
	param := filepath.Join(root, "sys/module/firmware_class/parameters/path")
	if err := os.WriteFile(param, []byte("/usr/lib/firmware"), 0o644); err != nil {
		log.Warn("firmware under /usr/lib/firmware only, and the loader's path cannot be set", "err", err)
		return
	}
	log.Info("firmware loader path set", "path", "/usr/lib/firmware")
}

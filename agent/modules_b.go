package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"ferry/kmod"
	"ferry/nfsroot"
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

// nfsClientModules are the modules the root's mount needs, loaded from
// B's tree when it has them: nothing answers the kernel's module requests
// once ferry is init (no udev, perhaps no modprobe). Only the version the
// root is mounted with (nfsroot.MountOptions: "3" is NFSv3, anything
// else NFSv4): nfsv3 (with nfs_acl) would be loaded for nothing
// otherwise. tcp_diag (with inet_diag) is sock_diag for TCP: the keeper
// resets through it the NFS client's connection that still backs off
// when the tunnel comes back (keeper/stalled.go).
func nfsClientModules(version string) []string {
	return append(append([]string{"af_packet"}, nfsMountModules(version)...), "tcp_diag")
}

// nfsMountModules are those of nfsClientModules without which the mount
// fails.
func nfsMountModules(version string) []string {
	if version == "3" {
		return []string{"sunrpc", "nfs", "nfsv3"}
	}
	return []string{"sunrpc", "nfs", "nfsv4"}
}

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
//
// What network and tunnel-b need loads in the phase: ESP, the devices'
// drivers (the NIC), what A carried (tun, ...). The NFS client (1.2 s of
// module loads under TCG, 0.6 s of it nfsv4's) is needed only by
// mount-root: one goroutine loads it from the phase's start on, beside
// the phase's loads and then beside network and tunnel-b (the keeper's
// IKE), and the nfs-client phase waits for it (nfsClientReady). Under
// TCG the two lanes slow each other (the phase 0.9 -> 1.6 s) but end
// sooner than one after the other.
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
	// The NFS client needs none of ESP's or the devices' modules, nor
	// they any of its: it loads from here on, on the other vCPU.
	version := a.settings.Root.NFSVersion
	nfsMods, _ := tree.Resolve(nil, nfsClientModules(version)) // errors: the background load reports them
	var now, later []kmod.Module
	if carried {
		// What A appended, all of it: A's own modules (B runs A's
		// release) or the borrower's bundle; what is or needs the NFS
		// client loads after it, in the background.
		mods, err := tree.Resolve(nil, tree.NamesIn(ModuleDir))
		if err != nil {
			a.log.Warn("carried modules: cannot resolve some", "err", err)
		}
		now, later = splitAfter(mods, nfsMods)
	}
	cp := &coldplugger{tree: tree, sysfs: "/sys", log: a.log, done: map[string]bool{}}
	devicesDone := make(chan time.Time, 1)
	a.nfsLoad = startBackground(func() error {
		return a.loadNFSClient(ctx, tree, version, devicesDone, cp, later, carried)
	})
	defer func() { devicesDone <- time.Now() }()
	// ESP first, in its order (kmod.ESPModules), before anything could
	// pull parts of it in out of order.
	mods, missing, err := tree.ResolveAvailable(kmod.ESPModules())
	loadESP(ctx, mods, missing, err, a.log)
	useFirmwareDir("/", a.log)
	if err := cp.devices(ctx); err != nil {
		a.log.Warn("coldplug incomplete", "dirs", dirs, "err", err)
	}
	a.log.Info("modules loaded for the devices present", "dirs", dirs, "count", len(cp.done))
	if carried {
		loaded, err := kmod.Loader{Log: a.log}.Load(ctx, now)
		if err != nil {
			a.log.Warn("carried modules: some failed", "err", err)
		}
		a.log.Info("carried modules loaded", "count", len(loaded), "after the nfs client", len(later))
	}
	return nil
}

// loadNFSClient is the modules phase's background part: the NFS client,
// then, once the phase's own coldplug is done (devicesDone says when; cp
// is the phase's until then), a last look, at least coldplugSettle
// later, for devices probed asynchronously, and the carried modules that
// needed the client. A module the mount needs that no tree has is named
// here; the mount's own error names it again.
func (a *Agent) loadNFSClient(ctx context.Context, tree *kmod.Tree, version string, devicesDone <-chan time.Time, cp *coldplugger, later []kmod.Module, carried bool) error {
	start := time.Now()
	if _, missing, _ := tree.ResolveAvailable(nfsMountModules(version)); len(missing) > 0 {
		a.log.Warn("NFS client modules in no module tree and not built in: the root's mount fails unless the kernel has them", "missing", missing)
	}
	mods, err := tree.Resolve(nil, nfsClientModules(version))
	if err != nil {
		a.log.Warn("NFS client modules: cannot resolve some", "err", err)
	}
	loaded, err := kmod.Loader{Log: a.log}.Load(ctx, mods)
	if err != nil {
		a.log.Warn("NFS client modules: some failed", "err", err)
	}
	a.log.Info("NFS client modules loaded", "count", len(loaded), "took", time.Since(start).Round(time.Millisecond))
	var last time.Time
	select {
	case last = <-devicesDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Devices a bus driver probes asynchronously get their moment.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(last.Add(coldplugSettle))):
	}
	for _, m := range mods {
		cp.done[kmod.NormalizeName(m.Name)] = true
	}
	if err := cp.devices(ctx); err != nil {
		a.log.Warn("late devices: some modules failed", "err", err)
	}
	if len(later) > 0 {
		if _, err := (kmod.Loader{Log: a.log}).Load(ctx, later); err != nil {
			a.log.Warn("carried modules after the nfs client: some failed", "err", err)
		}
	}
	if !carried {
		return nil
	}
	// Loaded modules live in kernel memory: free the RAM the files hold.
	return os.RemoveAll(ModuleDir)
}

// nfsClientReady waits for the modules phase's background loads (the NFS
// client): mount-root needs them, and place-state must not find the
// carried modules under StateDir. Meanwhile the other vCPU copies ferry
// to /run/initramfs/shutdown for switch-root's shutdown hand-off (20 MB,
// 0.1 s under TCG), which then only waits for it: the copy overlaps this
// wait and mount-root's on the NFS server instead of adding to
// switch-root.
func (a *Agent) nfsClientReady(ctx context.Context) error {
	a.shutdownCopy = startBackground(func() error { return nfsroot.ShutdownHandOff("/run", BinPath) })
	if a.nfsLoad == nil {
		return nil
	}
	return a.nfsLoad.wait(ctx)
}

// background is work one goroutine does while the phases go on.
type background struct {
	done chan struct{}
	err  error
}

func startBackground(fn func() error) *background {
	b := &background{done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.err = fn()
	}()
	return b
}

// wait returns the work's error once it is done.
func (b *background) wait(ctx context.Context) error {
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// splitAfter splits mods (in load order) into those that can load now
// and those that are one of first or depend on one that is, directly or
// through another module of mods: those load after first.
func splitAfter(mods, first []kmod.Module) (now, after []kmod.Module) {
	deferred := map[string]bool{}
	for _, m := range first {
		deferred[kmod.NormalizeName(m.Name)] = true
	}
	for _, m := range mods {
		name := kmod.NormalizeName(m.Name)
		if !deferred[name] && !slices.ContainsFunc(m.Depends, func(d string) bool { return deferred[kmod.NormalizeName(d)] }) {
			now = append(now, m)
			continue
		}
		deferred[name] = true
		if !slices.ContainsFunc(first, func(f kmod.Module) bool { return kmod.NormalizeName(f.Name) == name }) {
			after = append(after, m)
		}
	}
	return now, after
}

// coldplugger loads, from tree, the drivers of the devices under sysfs
// (udev's coldplug) and named modules, each once.
type coldplugger struct {
	tree  *kmod.Tree
	sysfs string
	log   *slog.Logger
	done  map[string]bool // normalized names asked for already
}

// fresh is mods without those asked for already.
func (c *coldplugger) fresh(mods []kmod.Module) []kmod.Module {
	return slices.DeleteFunc(mods, func(m kmod.Module) bool { return c.done[kmod.NormalizeName(m.Name)] })
}

func (c *coldplugger) load(ctx context.Context, what string, mods []kmod.Module) error {
	for _, m := range mods {
		c.done[kmod.NormalizeName(m.Name)] = true
	}
	loaded, err := kmod.Loader{Log: c.log}.Load(ctx, mods)
	c.log.Debug("coldplug", "what", what, "modules", len(mods), "loaded", len(loaded))
	return err
}

// devices loads the drivers of the devices present in rounds until no
// new device needs one: a bus driver (virtio_pci) loaded in one round
// makes the devices (virtio0) whose drivers the next loads. Devices
// probed synchronously (PCI, virtio) are there when the load returns;
// the caller gives asynchronous probes time before looking again.
func (c *coldplugger) devices(ctx context.Context) error {
	var errs []error
	for round := 0; round < coldplugRounds && ctx.Err() == nil; round++ {
		mas, err := kmod.DeviceModaliases(c.sysfs)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		mods, err := c.tree.Resolve(mas, nil)
		if err != nil {
			errs = append(errs, err)
		}
		if mods = c.fresh(mods); len(mods) == 0 {
			break
		}
		if err := c.load(ctx, fmt.Sprintf("devices, round %d", round), mods); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// coldplug loads, from tree, the drivers of the devices under sysfs, in
// rounds until no new device needs one, and the named modules (those the
// tree has) once the devices' rounds found nothing new: the NIC's driver
// is then in early, and its carrier (which the kernel's linkwatch reports
// up to 1 s after the device registers) comes while the named ones load,
// instead of during the network phase. A's; B's modules phase uses a
// coldplugger, which leaves the NFS client to the background.
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

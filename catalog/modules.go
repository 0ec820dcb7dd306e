package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"

	"ferry/initrd"
	"ferry/kmod"
)

// TransferModules are the modules B's kernel needs for the transfer: NIC
// drivers (virtio_pci binds the virtio devices and is named because depends=
// does not list it), IPsec ESP with its random-number generator and AEAD
// templates (the kernel cannot autoload them without modprobe), the tunnel
// and XFRM interfaces, the NFS client, and sock_diag for TCP (tcp_diag,
// which needs inet_diag), through which the keeper resets the NFS
// connection still backing off when the tunnel comes back.
func TransferModules() []string {
	mods := []string{
		"virtio_pci", "virtio_net", "e1000", "e1000e", "igb", "ixgbe", "i40e", "tg3", "bnxt_en",
		"xfrm_interface", "tun",
		"nfs", "nfsv3", "nfsv4", "tcp_diag",
	}
	// The ESP set includes what drbg's self-test needs (sha512, sha3,
	// jitterentropy): without them kernel ESP cannot build a state.
	return append(mods, kmod.ESPModules()...)
}

// bundleDir is where the bundle puts modules: the agent's module directory.
const bundleDir = "ferry/modules"

// planBundle resolves want under modulesDir, refuses modules built for
// another release than the kernel's, and splits the result into the modules
// to bundle and those initrd(B) already has.
//
// With lenient (the default TransferModules list), a wanted module the
// tree lacks is skipped (a flavour without some NIC drivers: Debian's
// cloud kernel has no e1000 or igb), except the NFS client, without which
// B cannot mount the root; a list the operator gave is strict.
func planBundle(modulesDir, release string, want []string, inInitrd map[string]bool, lenient bool) (bundle []kmod.Module, present []string, err error) {
	var mods []kmod.Module
	var missing []string
	if lenient {
		mods, missing, err = kmod.ResolveAvailable(modulesDir, want)
	} else {
		mods, err = kmod.Resolve(modulesDir, want)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("modules %s: %w", modulesDir, err)
	}
	for _, m := range missing {
		if m == "nfs" || m == "nfsv4" {
			return nil, nil, fmt.Errorf("modules %s: no %s module (nor built in): B could not mount its root", modulesDir, m)
		}
	}
	for _, m := range mods {
		info, err := kmod.ReadInfoFile(m.Path)
		if err != nil {
			return nil, nil, fmt.Errorf("modules %s: %w", modulesDir, err)
		}
		if r := info.Release(); r != release {
			return nil, nil, fmt.Errorf("modules %s: %s is built for release %q, the kernel is %q", modulesDir, m.Rel, r, release)
		}
		if inInitrd[kmod.NormalizeName(m.Name)] {
			present = append(present, m.Name)
			continue
		}
		bundle = append(bundle, m)
	}
	return bundle, present, nil
}

// writeBundle writes mods as one uncompressed newc archive at dst.
func writeBundle(dst string, mods []kmod.Module) (Artifact, []string, error) {
	files := make([]initrd.File, 0, len(mods))
	names := make([]string, 0, len(mods))
	for _, m := range mods {
		files = append(files, initrd.File{Path: path.Join(bundleDir, m.Rel), Mode: 0o644, Src: m.Path})
		names = append(names, m.Name)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Artifact{}, nil, fmt.Errorf("module bundle: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := initrd.WriteArchive(io.MultiWriter(f, h), files)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return Artifact{}, nil, fmt.Errorf("module bundle %s: %w", dst, err)
	}
	return Artifact{File: path.Base(dst), SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, Path: dst}, names, nil
}

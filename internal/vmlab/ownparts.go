package vmlab

import (
	"os"
	"path/filepath"
	"testing"
)

// The lab takes the user's own parts (docs/LAB.md, "Your own parts"):
//
//	FERRY_A_KERNEL       image A's kernel: an unpacked kernel package
//	                     (a directory with boot/vmlinuz-RELEASE and
//	                     lib/modules/RELEASE), or a Debian kernel package
//	                     name, downloaded into the cache and unpacked
//	FERRY_B_KERNEL       image B's kernel (a vmlinuz path; "cloud" is
//	                     build-images.sh's Debian cloud flavour)
//	FERRY_B_INITRD       image B's initrd, as its distribution made it
//	FERRY_B_MODULES      the module tree `ferry borrower image add
//	                     --modules` bundles for B (B's release)
//	FERRY_ROOT_TEMPLATE  the borrower's root template (a directory)
//	FERRY_ROOT_READY     the console regular expression that says that
//	                     root is up
//	FERRY_VM_MEM         MiB of guest RAM
//
// OwnParts applies them to im; image A's initrd is rebuilt for another
// A kernel.
func OwnParts(t testing.TB, ferry, cache string, im Images) Images {
	t.Helper()
	if k := os.Getenv("FERRY_A_KERNEL"); k != "" {
		dir := k
		if _, err := os.Stat(k); err != nil {
			dir = debianKernel(t, cache, k)
		}
		vmlinuz, moddir := unpackedKernel(t, dir)
		im.Vmlinuz, im.ModDir = vmlinuz, moddir
		im.InitrdA = filepath.Join(im.Lab, "initrd-a-own.img")
		buildInitrdA(t, ferry, im)
	}
	for env, dst := range map[string]*string{"FERRY_B_INITRD": &im.InitrdB, "FERRY_B_MODULES": &im.ModulesB,
		"FERRY_ROOT_TEMPLATE": &im.Export} {
		if v := os.Getenv(env); v != "" {
			if _, err := os.Stat(v); err != nil {
				t.Fatalf("%s=%s: %v", env, v, err)
			}
			*dst = v
		}
	}
	if k := os.Getenv("FERRY_B_KERNEL"); k != "" && k != "cloud" {
		if _, err := os.Stat(k); err != nil {
			t.Fatalf("FERRY_B_KERNEL=%s: want a vmlinuz path (or cloud): %v", k, err)
		}
		im.VmlinuzB = k
	}
	return im
}

// unpackedKernel finds boot/vmlinuz-REL and lib/modules/REL under dir.
func unpackedKernel(t testing.TB, dir string) (vmlinuz, moddir string) {
	t.Helper()
	ks, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(ks) != 1 {
		t.Fatalf("FERRY_A_KERNEL %s: want one boot/vmlinuz-RELEASE, found %v", dir, ks)
	}
	rel := filepath.Base(ks[0])[len("vmlinuz-"):]
	for _, m := range []string{filepath.Join(dir, "lib", "modules", rel), filepath.Join(dir, "usr", "lib", "modules", rel)} {
		if _, err := os.Stat(m); err == nil {
			return ks[0], m
		}
	}
	t.Fatalf("FERRY_A_KERNEL %s: no lib/modules/%s", dir, rel)
	return "", ""
}

// debianKernel downloads the Debian package pkg into the cache (once) and
// unpacks it; it returns the directory.
func debianKernel(t testing.TB, cache, pkg string) string {
	t.Helper()
	dir := filepath.Join(cache, "kernel", pkg)
	if _, err := os.Stat(filepath.Join(dir, "boot")); err == nil {
		return dir
	}
	debs := filepath.Join(cache, "debs")
	os.MkdirAll(debs, 0o755)
	if out, err := Run("sh", "-c", `cd "$1" && apt-get download "$2"`, "sh", debs, pkg); err != nil {
		t.Fatalf("FERRY_A_KERNEL=%s: not a path, and apt-get download failed: %v %s", pkg, err, out)
	}
	m, _ := filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
	if len(m) == 0 {
		t.Fatalf("apt-get download %s left no .deb in %s", pkg, debs)
	}
	if out, err := Run("dpkg-deb", "-x", m[len(m)-1], dir); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	return dir
}

package vmlab

import (
	"os"
	"path/filepath"
	"testing"
)

// DistroB is an image B as a distribution makes it: a kernel package
// installed in a Debian root with the initramfs generator, whose kernel
// hook wrote the initrd. Nothing of it is made or changed by ferry.
type DistroB struct {
	Generator string // initramfs-tools or dracut
	Vmlinuz   string
	Initrd    string
	Modules   string // lib/modules/RELEASE, for `image add --modules`
	Release   string
}

// DistroImageB installs Debian's cloud kernel with generator into a copy
// of the cached base root (once, in FERRY_CACHE/roots/builder-GENERATOR):
// the kernel's postinst hook runs the generator as on any Debian machine.
// The cloud flavour is another release than the lab's A kernel.
func DistroImageB(t testing.TB, cache, base, generator string) DistroB {
	t.Helper()
	dir := filepath.Join(cache, "roots", "builder-"+generator)
	if _, err := os.Stat(filepath.Join(dir, "boot")); err != nil || !hasInitrd(dir) {
		tmp := dir + ".tmp"
		os.RemoveAll(tmp)
		if out, err := Run("cp", "-a", "--reflink=auto", base, tmp); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		// Private mounts (unshare -m) vanish with the shell.
		if out, err := Run("unshare", "-m", "sh", "-c", `R=$1; mount -t proc proc $R/proc && mount --rbind /dev $R/dev &&
			mount -t sysfs sys $R/sys && cp /etc/resolv.conf $R/etc/resolv.conf &&
			DEBIAN_FRONTEND=noninteractive chroot $R apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive chroot $R apt-get install -y -qq --no-install-recommends "$2" zstd linux-image-cloud-amd64 &&
			chroot $R apt-get clean`, "sh", tmp, generator); err != nil {
			t.Fatalf("installing %s and Debian's cloud kernel: %v\n%s", generator, err, tail(out, 3000))
		}
		os.RemoveAll(dir)
		if err := os.Rename(tmp, dir); err != nil {
			t.Fatal(err)
		}
	}
	ks, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(ks) == 0 {
		t.Fatalf("%s: no kernel in boot/", dir)
	}
	rel := filepath.Base(ks[len(ks)-1])[len("vmlinuz-"):]
	return DistroB{Generator: generator, Vmlinuz: ks[len(ks)-1], Initrd: filepath.Join(dir, "boot", "initrd.img-"+rel),
		Modules: filepath.Join(dir, "usr", "lib", "modules", rel), Release: rel}
}

func hasInitrd(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "boot", "initrd.img-*"))
	return len(m) > 0
}

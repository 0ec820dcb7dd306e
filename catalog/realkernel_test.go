package catalog

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestAddRealDebianKernelBundlesTransferModules needs an unpacked Debian
// kernel package (dpkg -x linux-image-*.deb ROOT) named by FERRY_KERNEL_ROOT.
func TestAddRealDebianKernelBundlesTransferModules(t *testing.T) {
	root := os.Getenv("FERRY_KERNEL_ROOT")
	if root == "" {
		t.Skip("FERRY_KERNEL_ROOT not set (dpkg -x a linux-image .deb and point it there)")
	}
	kernels, _ := filepath.Glob(filepath.Join(root, "boot/vmlinuz-*"))
	mods, _ := filepath.Glob(filepath.Join(root, "lib/modules/*/kernel"))
	if len(kernels) == 0 || len(mods) == 0 {
		t.Skipf("FERRY_KERNEL_ROOT=%s has no boot/vmlinuz-* or lib/modules/*/kernel", root)
	}
	i := fakeInitrd(t, t.TempDir(), map[string]string{"init": "x", "lib/modules/x/kernel/net/tun.ko": "x"})
	d := openDir(t)
	im, err := d.Add(bg, "debian", kernels[0], i, "console=ttyS0", filepath.Dir(mods[0]))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("release %s, %d modules, %d bytes: %v", im.Release, len(im.Modules.Names), im.Modules.Size, im.Modules.Names)
	for _, want := range []string{"virtio_net", "esp4", "xfrm_user", "nfsv4", "drbg", "xfrm_algo", "sunrpc", "tcp_diag", "inet_diag"} {
		if !slices.Contains(im.Modules.Names, want) {
			t.Errorf("bundle lacks %s", want)
		}
	}
	if slices.Contains(im.Modules.Names, "tun") || !slices.Contains(im.Modules.Present, "tun") {
		t.Errorf("tun, which initrd(B) has, bundled anyway: names %v present %v", im.Modules.Names, im.Modules.Present)
	}
}

package kmod

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// kernelModules returns lib/modules/RELEASE of the unpacked Debian kernel
// package named by FERRY_KERNEL_ROOT, or skips the test.
func kernelModules(t *testing.T) (dir, release string) {
	t.Helper()
	root := os.Getenv("FERRY_KERNEL_ROOT")
	if root == "" {
		t.Skip("FERRY_KERNEL_ROOT not set (dpkg -x a linux-image .deb and point it there)")
	}
	matches, _ := filepath.Glob(filepath.Join(root, "lib/modules/*/kernel"))
	if len(matches) == 0 {
		t.Skipf("FERRY_KERNEL_ROOT=%s has no lib/modules/*/kernel", root)
	}
	dir = filepath.Dir(matches[0])
	return dir, filepath.Base(dir)
}

func TestResolveRealDebianNetAndNFSModules(t *testing.T) {
	dir, release := kernelModules(t)
	mods, err := Resolve(dir, []string{"virtio_pci", "virtio_net", "nfsv4", "virtio_blk"})
	if err != nil {
		t.Fatal(err)
	}
	got := names(mods)
	t.Logf("load order: %s", strings.Join(got, " "))
	pos := map[string]int{}
	for i, n := range got {
		pos[n] = i
	}
	// Every module in the order that worked in the lab is there.
	for _, n := range strings.Fields("virtio_pci_legacy_dev virtio_pci_modern_dev virtio_ring virtio virtio_pci failover net_failover virtio_net dns_resolver grace sunrpc lockd netfs fscache nfs nfsv4 virtio_blk") {
		if _, ok := pos[n]; !ok {
			t.Errorf("%s missing from %v", n, got)
		}
	}
	// And every module comes after its dependencies.
	for _, m := range mods {
		for _, d := range m.Depends {
			if pos[NormalizeName(d)] >= pos[m.Name] {
				t.Errorf("%s at %d loads before its dependency %s", m.Name, pos[m.Name], d)
			}
		}
		info, err := ReadInfoFile(m.Path)
		if err != nil || info.Release() != release {
			t.Errorf("%s: vermagic release %q, want %q (%v)", m.Name, info.Release(), release, err)
		}
	}
}

func TestResolveRealDebianDoesNotPullBusDriver(t *testing.T) {
	// depends= records symbol use only: virtio_net does not need virtio_pci
	// to link, yet without it no virtio NIC appears. Callers must name it.
	dir, _ := kernelModules(t)
	mods, err := Resolve(dir, []string{"virtio_net", "nfsv4", "virtio_blk"})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names(mods), "virtio_pci") {
		t.Errorf("virtio_pci pulled in by depends=: %v", names(mods))
	}
}

func TestReadInfoParsesEveryRealModule(t *testing.T) {
	dir, release := kernelModules(t)
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".ko") {
			return err
		}
		n++
		info, err := ReadInfoFile(p)
		if err != nil {
			t.Error(err)
			return nil
		}
		stem := strings.TrimSuffix(filepath.Base(p), ".ko")
		if NormalizeName(info.Name) != NormalizeName(stem) || info.Release() != release {
			t.Errorf("%s: name %q release %q", p, info.Name, info.Release())
		}
		return nil
	})
	t.Logf("%d modules", n)
}

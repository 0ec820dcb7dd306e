package kmod

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func names(mods []Module) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Name)
	}
	return out
}

// tree writes a module tree shaped like a distro's: nested directories,
// dashes in file names where depends= uses underscores.
func tree(t *testing.T) string {
	dir := t.TempDir()
	writeModule(t, dir, "kernel/drivers/virtio/virtio.ko", "virtio", "")
	writeModule(t, dir, "kernel/drivers/virtio/virtio_ring.ko", "virtio_ring", "")
	writeModule(t, dir, "kernel/net/core/failover.ko", "failover", "")
	writeModule(t, dir, "kernel/drivers/net/net-failover.ko", "net_failover", "failover")
	writeModule(t, dir, "kernel/drivers/net/virtio_net.ko", "virtio_net", "virtio_ring,virtio,net_failover")
	writeModule(t, dir, "kernel/drivers/block/virtio_blk.ko", "virtio_blk", "virtio,virtio_ring")
	return dir
}

func TestResolveOrdersDependenciesFirst(t *testing.T) {
	dir := tree(t)
	mods, err := Resolve(dir, []string{"virtio_net", "virtio_blk"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"virtio_ring", "virtio", "failover", "net-failover", "virtio_net", "virtio_blk"}
	if got := names(mods); !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	m := mods[3]
	if m.Rel != "kernel/drivers/net/net-failover.ko" || !filepath.IsAbs(m.Path) || !reflect.DeepEqual(m.Depends, []string{"failover"}) {
		t.Errorf("module %+v", m)
	}
}

func TestResolveTreatsDashAndUnderscoreAlike(t *testing.T) {
	mods, err := Resolve(tree(t), []string{"net-failover", "virtio-ring", "net_failover"})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(mods); !reflect.DeepEqual(got, []string{"failover", "net-failover", "virtio_ring"}) {
		t.Fatalf("got %v", got)
	}
}

func TestResolveIsDeterministic(t *testing.T) {
	dir := tree(t)
	first, _ := Resolve(dir, []string{"virtio_blk", "virtio_net"})
	for range 5 {
		again, _ := Resolve(dir, []string{"virtio_blk", "virtio_net"})
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("%v then %v", names(first), names(again))
		}
	}
}

func TestResolveNamesMissingModuleAndWhoNeedsIt(t *testing.T) {
	dir := tree(t)
	os.Remove(filepath.Join(dir, "kernel/net/core/failover.ko"))
	_, err := Resolve(dir, []string{"virtio_net", "nosuch"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`module "failover" (needed by "net-failover") not found under ` + dir, `module "nosuch" not found`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestResolveDetectsCycle(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, dir, "a.ko", "a", "b")
	writeModule(t, dir, "b.ko", "b", "c")
	writeModule(t, dir, "c.ko", "c", "a")
	_, err := Resolve(dir, []string{"a"})
	if err == nil || !strings.Contains(err.Error(), "dependency cycle: a -> b -> c -> a") {
		t.Fatalf("got %v", err)
	}
}

func TestResolveLeavesOutBuiltinModules(t *testing.T) {
	dir := tree(t)
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/fs/ext4/ext4.ko\nkernel/drivers/virtio/virtio-mmio.ko\n"), 0o644)
	mods, err := Resolve(dir, []string{"ext4", "virtio_mmio", "virtio"})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(mods); !reflect.DeepEqual(got, []string{"virtio"}) {
		t.Fatalf("got %v", got)
	}
}

func TestResolvePrefersUpdatesOverKernel(t *testing.T) {
	dir := tree(t)
	writeModule(t, dir, "updates/virtio.ko", "virtio", "")
	mods, err := Resolve(dir, []string{"virtio"})
	if err != nil {
		t.Fatal(err)
	}
	if mods[0].Rel != "updates/virtio.ko" {
		t.Fatalf("got %s", mods[0].Rel)
	}
}

func TestResolveReportsUnreadableModule(t *testing.T) {
	dir := tree(t)
	os.WriteFile(filepath.Join(dir, "kernel/net/core/failover.ko"), []byte("not elf"), 0o644)
	_, err := Resolve(dir, []string{"virtio_net"})
	if err == nil || !strings.Contains(err.Error(), `module "failover" (needed by "net-failover")`) || !strings.Contains(err.Error(), "not an ELF module") {
		t.Fatalf("got %v", err)
	}
}

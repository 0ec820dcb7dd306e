package kmod

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// The modaliases QEMU's devices show a guest (read from the lab guest's
// /sys/bus/*/devices/*/modalias): a virtio-net and an e1000 PCI NIC, the
// virtio device virtio_pci then creates, and a virtio-blk disk.
var qemuModaliases = []string{
	"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
	"virtio:d00000001v00001AF4",
	"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
	"virtio:d00000002v00001AF4",
}

// TestColdplugRealDebianModules: Debian's package ships no modules.alias
// (depmod runs at install), so the aliases come from each module's
// .modinfo; the NIC and disk drivers match as udev would load them.
func TestColdplugRealDebianModules(t *testing.T) {
	dir, _ := kernelModules(t)
	mods, err := ResolveAliases(dir, qemuModaliases)
	if err != nil {
		t.Fatal(err)
	}
	got := names(mods)
	t.Logf("coldplug load order: %s", strings.Join(got, " "))
	for _, want := range []string{"virtio_pci", "virtio_net", "e1000", "virtio_blk", "virtio", "virtio_ring", "net_failover"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s not loaded for the QEMU devices", want)
		}
	}
	pos := map[string]int{}
	for i, n := range got {
		pos[n] = i
	}
	if pos["virtio_net"] < pos["net_failover"] || pos["virtio_net"] < pos["virtio_ring"] {
		t.Errorf("virtio_net before its dependencies: %v", got)
	}
	// A device nothing drives matches nothing.
	if m, _ := ResolveAliases(dir, []string{"pci:v0000FFFFd0000FFFFsv0sd0bc02sc00i00"}); len(m) != 0 {
		t.Errorf("unknown device matched %v", names(m))
	}
}

func TestBuiltinAliasesRealDebian(t *testing.T) {
	dir, _ := kernelModules(t)
	al, found, err := BuiltinAliases(dir)
	if err != nil || !found || len(al) == 0 {
		t.Fatalf("modules.builtin.modinfo: %d aliases, found %v, %v", len(al), found, err)
	}
	// Debian builds virtio_net as a module: no built-in alias matches it.
	if m := MatchAliases(al, []string{"virtio:d00000001v00001AF4"}); len(m) != 0 {
		t.Errorf("virtio-net built in? %v", m)
	}
}

// TestCompressedRealModules: the same module compressed with xz, zstd and
// gzip (as Debian 13, Fedora and others ship them) reads the same
// .modinfo and resolves the same, mixed in one tree.
func TestCompressedRealModules(t *testing.T) {
	dir, _ := kernelModules(t)
	src, err := Resolve(dir, []string{"virtio_net"})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	comp := []string{".ko.xz", ".ko.zst", ".ko.gz"}
	for i, m := range src {
		plain, err := os.ReadFile(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		ext := comp[i%len(comp)]
		var b bytes.Buffer
		switch ext {
		case ".ko.xz":
			w, _ := xz.NewWriter(&b)
			w.Write(plain)
			w.Close()
		case ".ko.zst":
			w, _ := zstd.NewWriter(&b)
			w.Write(plain)
			w.Close()
		case ".ko.gz":
			w := gzip.NewWriter(&b)
			w.Write(plain)
			w.Close()
		}
		p := filepath.Join(out, m.Name+ext)
		os.WriteFile(p, b.Bytes(), 0o644)
		want, _ := ReadInfoFile(m.Path)
		got, err := ReadInfoFile(p)
		if err != nil || got.Name != want.Name || !slices.Equal(got.Depends, want.Depends) || len(got.Aliases) != len(want.Aliases) {
			t.Errorf("%s: %+v %v, want %+v", p, got, err, want)
		}
		img, err := readModuleImage(p)
		if err != nil || !bytes.Equal(img, plain) {
			t.Errorf("%s: decompressed image differs (%v)", p, err)
		}
	}
	mods, err := ResolveAliases(out, []string{"virtio:d00000001v00001AF4"})
	if err != nil || !slices.Equal(names(mods), names(src)) {
		t.Errorf("compressed tree: %v %v, want %v", names(mods), err, names(src))
	}
}

// The NIC selections on Debian's kernel: the class holds e1000 and
// virtio_net, and QEMU's e1000 (8086:100e) and virtio-net (1af4:1000)
// resolve to their drivers by PCI id.
func TestNICSelectionOnRealKernel(t *testing.T) {
	dir, _ := kernelModules(t)
	tree, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	eth, err := tree.NICModules("ethernet")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"e1000", "virtio_net", "igb", "mlx5_core"} {
		if !slices.Contains(eth, want) {
			t.Errorf("class ethernet lacks %s (%d modules)", want, len(eth))
		}
	}
	var mas []string
	for _, id := range []string{"8086:100e", "1af4:1000"} {
		ma, err := PCIModaliases(id)
		if err != nil {
			t.Fatal(err)
		}
		mas = append(mas, ma...)
	}
	got := MatchAliases(tree.Aliases(), mas)
	for _, want := range []string{"e1000", "virtio_pci", "virtio_net"} {
		if !slices.Contains(got, want) {
			t.Errorf("PCI ids match %v, want %s among them", got, want)
		}
	}
}

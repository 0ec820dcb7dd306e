package kmod

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFnmatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", false},
		{"virtio:d00000001v*", "virtio:d00000001v00001AF4", true},
		{"virtio:d00000001v*", "virtio:d00000002v00001AF4", false},
		{"usb:v*p*d*dc*dsc*dp*ic0[23]isc*ip*in*", "usb:v1D6Bp0002d0601dc09dsc00dp01ic03isc00ip00in00", true},
		{"usb:v*p*d*dc*dsc*dp*ic0[23]isc*ip*in*", "usb:v1D6Bp0002d0601dc09dsc00dp01ic09isc00ip00in00", false},
		{"a[!0-9]c", "abc", true},
		{"a[!0-9]c", "a5c", false},
		{"a[^b]c", "abc", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{`a\*c`, "a*c", true},
		{`a\*c`, "abc", false},
		{"a[bc", "a[bc", true}, // unclosed: literal
		{"*", "", true},
		{"**x", "yyx", true},
		{"", "x", false},
	} {
		if got := Fnmatch(c.p, c.s); got != c.want {
			t.Errorf("Fnmatch(%q, %q) = %v, want %v", c.p, c.s, got, c.want)
		}
	}
}

func TestModulesAliasFileWinsAndIsValidated(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "nic.ko"), fakeModule("name=nic", "alias=pci:v0000ABCDd*sv*sd*bc*sc*i*"), 0o644)
	// No modules.alias: the .modinfo alias= fields.
	got, err := ResolveAliases(dir, []string{"pci:v0000ABCDd00000001sv0sd0bc02sc00i00"})
	if err != nil || !slices.Equal(names(got), []string{"nic"}) {
		t.Fatalf("from .modinfo: %v %v", names(got), err)
	}
	// depmod's modules.alias, where present, is what counts.
	os.WriteFile(filepath.Join(dir, "modules.alias"), []byte("# Aliases extracted from modules themselves.\nalias pci:v00001111d* nic\n"), 0o644)
	if got, _ := ResolveAliases(dir, []string{"pci:v0000ABCDd00000001sv0sd0bc02sc00i00"}); len(got) != 0 {
		t.Errorf("modules.alias ignored: %v", names(got))
	}
	if got, _ := ResolveAliases(dir, []string{"pci:v00001111d00000002"}); !slices.Equal(names(got), []string{"nic"}) {
		t.Errorf("modules.alias: %v", names(got))
	}
	os.WriteFile(filepath.Join(dir, "modules.alias"), []byte("alias pci:* ../../evil\n"), 0o644)
	if _, err := ReadAliases(dir); err == nil || !strings.Contains(err.Error(), "modules.alias line 1") {
		t.Errorf("bad module name accepted: %v", err)
	}
}

func TestDeviceModaliasesReadsEveryBus(t *testing.T) {
	sys := t.TempDir()
	for p, v := range map[string]string{
		"bus/pci/devices/0000:00:03.0/modalias":  "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\n",
		"bus/virtio/devices/virtio0/modalias":    "virtio:d00000001v00001AF4\n",
		"bus/pci/devices/0000:00:01.0/modalias":  "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\n", // same again
		"bus/platform/devices/serial8250/driver": "",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(sys, p)), 0o755)
		os.WriteFile(filepath.Join(sys, p), []byte(v), 0o644)
	}
	got, err := DeviceModaliases(sys)
	want := []string{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", "virtio:d00000001v00001AF4"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %q %v, want %q", got, err, want)
	}
}

// TestTreeOfInitrdAndBundle: the bundle holds only what initrd(B) lacks,
// so a bundled module's dependency is found in initrd(B)'s tree; a name in
// both is initrd(B)'s.
func TestTreeOfInitrdAndBundle(t *testing.T) {
	own, bundle := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(own, "kernel/net"), 0o755)
	os.WriteFile(filepath.Join(own, "kernel/net/xfrm_algo.ko"), fakeModule("name=xfrm_algo"), 0o644)
	os.WriteFile(filepath.Join(own, "kernel/net/virtio_net.ko"), fakeModule("name=virtio_net", "alias=virtio:d00000001v*"), 0o644)
	os.WriteFile(filepath.Join(bundle, "esp4.ko"), fakeModule("name=esp4", "depends=xfrm_algo"), 0o644)
	os.WriteFile(filepath.Join(bundle, "virtio_net.ko"), fakeModule("name=virtio_net", "alias=virtio:d00000001v*"), 0o644)
	if _, err := Resolve(bundle, []string{"esp4"}); err == nil {
		t.Fatal("the bundle alone resolved esp4 without xfrm_algo")
	}
	tree, err := OpenTree(own, bundle)
	if err != nil {
		t.Fatal(err)
	}
	mods, missing, err := tree.ResolveAvailable([]string{"esp4", "drbg"})
	if err != nil || !slices.Equal(names(mods), []string{"xfrm_algo", "esp4"}) || !slices.Equal(missing, []string{"drbg"}) {
		t.Fatalf("esp4: %v missing %v, %v", names(mods), missing, err)
	}
	if !strings.HasPrefix(mods[0].Path, own) || !strings.HasPrefix(mods[1].Path, bundle) {
		t.Errorf("paths: %s %s", mods[0].Path, mods[1].Path)
	}
	if got := tree.NamesIn(bundle); !slices.Equal(got, []string{"esp4", "virtio_net"}) {
		t.Errorf("NamesIn(bundle) = %v", got)
	}
	mods, err = tree.Resolve([]string{"virtio:d00000001v00001AF4"}, nil)
	if err != nil || len(mods) != 1 || !strings.HasPrefix(mods[0].Path, own) {
		t.Errorf("virtio_net: %+v %v (want initrd(B)'s)", mods, err)
	}
}

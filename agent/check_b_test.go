package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/initrd"
	"ferry/keeper"
	"ferry/kmod"
)

// debianModules is the unpacked Debian kernel's module tree, or skips.
func debianModules(t *testing.T) (dir, release string) {
	t.Helper()
	root := os.Getenv("FERRY_KERNEL_ROOT")
	if root == "" {
		t.Skip("FERRY_KERNEL_ROOT not set (scripts/fetch-kernel.sh writes it into $FERRY_CACHE/kernel.env, default build/cache)")
	}
	m, _ := filepath.Glob(filepath.Join(root, "lib/modules/*/kernel"))
	if len(m) == 0 {
		t.Skipf("no lib/modules/*/kernel under %s", root)
	}
	return filepath.Dir(m[0]), filepath.Base(filepath.Dir(m[0]))
}

// fakeInitrdB builds an initrd(B) as initramfs-tools lays it out (merged
// /usr, gzip) with the real Debian modules named and their dependencies,
// and the kernel's modules.builtin(.modinfo) when builtin is set.
func fakeInitrdB(t *testing.T, dir, release string, names []string, builtin bool, extra ...initrd.File) string {
	t.Helper()
	mods, err := kmod.Resolve(dir, names)
	if err != nil {
		t.Fatal(err)
	}
	top := "usr/lib/modules/" + release + "/"
	files := []initrd.File{{Path: "init", Mode: 0o755, Data: []byte("#!/bin/sh\n")}}
	for _, m := range mods {
		files = append(files, initrd.File{Path: top + m.Rel, Mode: 0o644, Src: m.Path})
	}
	if builtin {
		for _, f := range []string{"modules.builtin", "modules.builtin.modinfo"} {
			files = append(files, initrd.File{Path: top + f, Mode: 0o644, Src: filepath.Join(dir, f)})
		}
	}
	for _, e := range extra {
		e.Path = top + e.Path
		files = append(files, e)
	}
	p := filepath.Join(t.TempDir(), "initrd.img")
	if err := initrd.Build(p, files, initrd.BuildOptions{Compression: initrd.Gzip}); err != nil {
		t.Fatal(err)
	}
	return p
}

var qemuVirtioNIC = []string{"virtio:d00000001v00001AF4", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"}

func TestCheckBRealDebianInitrd(t *testing.T) {
	dir, release := debianModules(t)
	full := []string{"virtio_pci", "virtio_net", "nfsv4", "esp4", "tun"}
	for _, c := range []struct {
		name    string
		mods    []string
		builtin bool
		plane   keeper.DataPlane
		tunnel  bool
		bundle  []string
		want    string // "" = passes
		warns   bool
	}{
		{"all there", full, true, keeper.DataPlaneAuto, true, nil, "", false},
		{"no NIC driver", []string{"virtio_pci", "nfsv4", "esp4"}, true, keeper.DataPlaneAuto, true, nil,
			"no driver for the NIC (modalias virtio:d00000001v00001AF4)", false},
		{"no bus driver", []string{"virtio_net", "nfsv4", "esp4"}, true, keeper.DataPlaneAuto, true, nil,
			"no driver for the NIC (modalias pci:v00001AF4d00001000", false},
		{"no NFS", []string{"virtio_pci", "virtio_net", "esp4"}, true, keeper.DataPlaneAuto, true, nil, "no NFS client (nfs)", false},
		{"kernel plane without esp4", []string{"virtio_pci", "virtio_net", "nfsv4", "tun"}, true, keeper.DataPlaneKernel, true, nil,
			"no kernel ESP (esp4)", false},
		{"no ESP at all", []string{"virtio_pci", "virtio_net", "nfsv4"}, true, keeper.DataPlaneAuto, true, nil,
			"no ESP plane (esp4 or tun)", false},
		{"bundle brings ESP and tun", []string{"virtio_pci", "virtio_net", "nfsv4"}, true, keeper.DataPlaneAuto, true, []string{"esp4", "tun"}, "", false},
		{"lab mode needs no ESP", []string{"virtio_pci", "virtio_net", "nfsv4"}, true, keeper.DataPlaneAuto, false, nil, "", false},
		{"built-ins unknown: warn, do not refuse", []string{"nfsv4"}, false, keeper.DataPlaneAuto, true, nil, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := scanInitrdModules(fakeInitrdB(t, dir, release, c.mods, c.builtin), release)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.bundle) > 0 {
				bm, err := kmod.Resolve(dir, c.bundle)
				if err != nil {
					t.Fatal(err)
				}
				var files []initrd.File
				for _, b := range bm {
					data, _ := os.ReadFile(b.Path)
					files = append(files, initrd.File{Path: "/ferry/modules/" + b.Rel, Data: data})
				}
				m.addBundle(files)
			}
			var warns []string
			err = m.check(qemuVirtioNIC, c.plane, c.tunnel, func(s string) { warns = append(warns, s) })
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error naming %q", err, c.want)
			case c.want != "" && !strings.Contains(err.Error(), "usr/lib/modules/"+release):
				t.Errorf("error does not say where it looked: %v", err)
			}
			if (len(warns) > 0) != c.warns {
				t.Errorf("warnings %q, want some: %v", warns, c.warns)
			}
			if err != nil {
				t.Log(err)
			}
		})
	}
}

func TestCheckBOtherReleaseHasNoTree(t *testing.T) {
	dir, release := debianModules(t)
	m, err := scanInitrdModules(fakeInitrdB(t, dir, release, []string{"virtio_net"}, true), "6.12.0-99-cloud-amd64")
	if err != nil {
		t.Fatal(err)
	}
	if m.tree != "" || len(m.modules) != 0 {
		t.Fatalf("modules of another release taken: %s %d", m.tree, len(m.modules))
	}
	// Nothing known about B's kernel: no refusal, warnings.
	var warns []string
	if err := m.check(qemuVirtioNIC, keeper.DataPlaneAuto, true, func(s string) { warns = append(warns, s) }); err != nil || len(warns) == 0 {
		t.Fatalf("err %v, warnings %q", err, warns)
	}
}

func TestNICModaliasesIncludeTheVirtioTransport(t *testing.T) {
	sys := t.TempDir()
	pci := filepath.Join(sys, "devices/pci0000:00/0000:00:03.0")
	dev := filepath.Join(pci, "virtio0")
	os.MkdirAll(dev, 0o755)
	os.MkdirAll(filepath.Join(sys, "bus/virtio"), 0o755)
	os.WriteFile(filepath.Join(pci, "modalias"), []byte(qemuVirtioNIC[1]+"\n"), 0o644)
	os.WriteFile(filepath.Join(dev, "modalias"), []byte(qemuVirtioNIC[0]+"\n"), 0o644)
	os.Symlink(filepath.Join(sys, "bus/virtio"), filepath.Join(dev, "subsystem"))
	os.MkdirAll(filepath.Join(sys, "class/net/eth0"), 0o755)
	os.Symlink(dev, filepath.Join(sys, "class/net/eth0/device"))
	got := nicModaliases(sys, "eth0")
	if len(got) != 2 || got[0] != qemuVirtioNIC[0] || got[1] != qemuVirtioNIC[1] {
		t.Fatalf("got %q", got)
	}
}

// TestCheckBUsesModulesAliasWherePresent: with depmod's modules.alias in
// initrd(B) (mkinitramfs writes one), it is the alias table; the modules'
// own .modinfo is not read.
func TestCheckBUsesModulesAliasWherePresent(t *testing.T) {
	dir, release := debianModules(t)
	mods := []string{"virtio_pci", "virtio_net", "nfsv4"}
	for _, c := range []struct {
		alias string
		want  string
	}{
		{"alias virtio:d00000001v* virtio_net\nalias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n", ""},
		{"alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n", "no driver for the NIC (modalias virtio:d00000001v00001AF4)"},
	} {
		p := fakeInitrdB(t, dir, release, mods, true, initrd.File{Path: "modules.alias", Mode: 0o644, Data: []byte(c.alias)})
		m, err := scanInitrdModules(p, release)
		if err != nil {
			t.Fatal(err)
		}
		if !m.dependAlias || m.modinfo {
			t.Fatalf("modules.alias not taken (seen %v, .modinfo read %v)", m.dependAlias, m.modinfo)
		}
		err = m.check(qemuVirtioNIC, keeper.DataPlaneAuto, false, func(string) {})
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("modules.alias %q: got %v, want %q", c.alias, err, c.want)
		}
	}
}

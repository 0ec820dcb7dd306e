package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ferry/initrd"
)

func writeBundle(t *testing.T, files []initrd.File) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "modules.cpio")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := initrd.WriteArchive(f, files); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBundleFilesTakesModulesUnderFerryModules(t *testing.T) {
	p := writeBundle(t, []initrd.File{
		{Path: "ferry/modules/kernel/net/ipv4/esp4.ko", Mode: 0o644, Data: []byte("\x7fELF esp4")},
		{Path: "ferry/modules/kernel/drivers/net/tun.ko.xz", Mode: 0o644, Data: []byte("\xfd7zXZ\x00tun")},
	})
	files, names, err := bundleFiles(p)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	i := slices.IndexFunc(files, func(f initrd.File) bool { return f.Path == "/ferry/modules/kernel/net/ipv4/esp4.ko" })
	if !slices.Equal(names, []string{"esp4.ko", "tun.ko.xz"}) || i < 0 || string(files[i].Data) != "\x7fELF esp4" {
		t.Fatalf("got %v %+v", names, files[0])
	}
}

func TestBundleFilesRefusesAnythingElse(t *testing.T) {
	for _, c := range []struct {
		f    initrd.File
		want string
	}{
		{initrd.File{Path: "etc/passwd.ko", Mode: 0o644, Data: []byte("x")}, `"etc/passwd.ko" is not under ferry/modules/`},
		{initrd.File{Path: "ferry/modulesx/init.ko", Mode: 0o755, Data: []byte("x")}, "is not under ferry/modules/"},
		{initrd.File{Path: "ferry/modules/init", Mode: 0o755, Data: []byte("#!/bin/sh")}, "is not a kernel module"},
		{initrd.File{Path: "ferry/modules/x.ko", Link: "/init"}, "not a module file"},
	} {
		p := writeBundle(t, []initrd.File{c.f})
		if _, _, err := bundleFiles(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.f.Path, err, c.want)
		}
	}
}

func TestMergeFilesBundleWins(t *testing.T) {
	got := mergeFiles([]initrd.File{{Path: "/a", Src: "A"}, {Path: "/b", Src: "A"}}, []initrd.File{{Path: "/b", Src: "bundle"}})
	if len(got) != 2 || got[0].Path != "/a" || got[1].Src != "bundle" {
		t.Fatalf("got %+v", got)
	}
}

package kmod

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseModinfoReadsNameDependsVermagic(t *testing.T) {
	data := []byte("alias=pci:v00001AF4d*\x00depends=virtio_ring,virtio,net_failover\x00retpoline=Y\x00name=virtio_net\x00vermagic=6.1.0-48-amd64 SMP preempt mod_unload modversions \x00")
	info, err := ParseModinfo(data)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "virtio_net" || !slices.Equal(info.Depends, []string{"virtio_ring", "virtio", "net_failover"}) || info.Release() != "6.1.0-48-amd64" {
		t.Errorf("got %+v", info)
	}
}

func TestParseModinfoSkipsAlignmentPaddingAndRepeatedOtherKeys(t *testing.T) {
	data := []byte("\x00\x00alias=a\x00\x00\x00alias=b\x00name=x\x00\x00")
	info, err := ParseModinfo(data)
	if err != nil || info.Name != "x" {
		t.Fatalf("got %+v, %v", info, err)
	}
}

func TestParseModinfoEmptyDependsMeansNone(t *testing.T) {
	info, err := ParseModinfo([]byte("depends=\x00name=virtio\x00"))
	if err != nil || info.Depends != nil {
		t.Fatalf("got %+v, %v", info, err)
	}
}

func TestParseModinfoAcceptsMissingFinalNUL(t *testing.T) {
	info, err := ParseModinfo([]byte("name=last"))
	if err != nil || info.Name != "last" {
		t.Fatalf("got %+v, %v", info, err)
	}
}

func TestParseModinfoRefusesMalformedEntriesWithOffset(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"name=a\x00garbage\x00", "offset 7 is not key=value"},
		{"=x\x00", "offset 0 is not key=value"},
		{"depends=a,,b\x00", "depends= at offset 0: empty module name"},
		{"depends=../evil\x00", "has byte 0x2f"},
		{"name=" + strings.Repeat("n", 56) + "\x00", "longer than 55 bytes"},
		{"name=a\x00name=b\x00", "name= repeated at offset 7"},
	} {
		_, err := ParseModinfo([]byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseModinfo(%q) = %v, want error containing %q", tc.data, err, tc.want)
		}
	}
}

func TestParseModinfoRefusesOversizedSection(t *testing.T) {
	_, err := ParseModinfo(make([]byte, maxModinfoSize+1))
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("got %v", err)
	}
}

func TestReadInfoFromHandBuiltELF(t *testing.T) {
	info, err := ReadInfo(bytes.NewReader(fakeModule("depends=b,c", "name=a")))
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "a" || !slices.Equal(info.Depends, []string{"b", "c"}) {
		t.Errorf("got %+v", info)
	}
}

func TestReadInfoFromCompiledObject(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found; the hand-built ELF fixture covers the parser")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "m.c")
	obj := filepath.Join(dir, "m.ko")
	code := `__attribute__((section(".modinfo"), used, aligned(1))) static const char a[] = "depends=dep-one,dep_two";
__attribute__((section(".modinfo"), used, aligned(1))) static const char b[] = "name=from_gcc";
int x(void) { return 0; }
`
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-c", "-o", obj, src).CombinedOutput(); err != nil {
		t.Skipf("gcc -c failed: %v\n%s", err, out)
	}
	info, err := ReadInfoFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "from_gcc" || !slices.Equal(info.Depends, []string{"dep-one", "dep_two"}) {
		t.Errorf("got %+v", info)
	}
}

func TestReadInfoRefusesCompressedModules(t *testing.T) {
	for name, magic := range map[string]string{"xz": "\xfd7zXZ\x00rest", "zstd": "\x28\xb5\x2f\xfdrest", "gzip": "\x1f\x8b\x08\x00"} {
		_, err := ReadInfo(strings.NewReader(magic))
		if err == nil || !strings.Contains(err.Error(), name+"-compressed module: decompress it first") {
			t.Errorf("%s: got %v", name, err)
		}
	}
	// A name that says compressed over plain bytes is refused.
	p := filepath.Join(t.TempDir(), "virtio.ko.zst")
	os.WriteFile(p, fakeModule("name=virtio"), 0o644)
	if _, err := ReadInfoFile(p); err == nil || !strings.Contains(err.Error(), "virtio.ko.zst: named zstd-compressed but has no zstd magic") {
		t.Errorf("by extension: got %v", err)
	}
}

func TestReadInfoRefusesNonELFInput(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"#!/bin/sh\n", `not an ELF module: magic "#!/b"`},
		{"ab", "file is 2 bytes long"},
		{"\x7fELF\x02\x01\x01garbage", "not a valid ELF module"},
	} {
		_, err := ReadInfo(strings.NewReader(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadInfo(%q) = %v, want %q", tc.data, err, tc.want)
		}
	}
}

func TestReadInfoRefusesObjectWithoutModinfo(t *testing.T) {
	data := fakeModule("name=x")
	// Rename the section: ".modinfo" -> ".modinfX".
	i := bytes.Index(data, []byte(".modinfo\x00.shstrtab"))
	data[i+8] = 'X'
	if _, err := ReadInfo(bytes.NewReader(data)); err == nil || !strings.Contains(err.Error(), "no .modinfo section") {
		t.Fatalf("got %v", err)
	}
}

func FuzzModinfo(f *testing.F) {
	f.Add([]byte("name=virtio_net\x00depends=virtio_ring,virtio\x00vermagic=6.1.0 SMP\x00"))
	f.Add([]byte("\x00\x00depends=\x00"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseModinfo(data)
		if err != nil {
			return
		}
		names := info.Depends
		if info.Name != "" {
			names = append(names, info.Name)
		}
		for _, d := range names {
			if d == "" || strings.ContainsAny(d, "/,= \x00") || len(d) > maxNameLen {
				t.Fatalf("accepted bad module name %q", d)
			}
		}
	})
}

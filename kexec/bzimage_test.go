package kexec

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/kexec/kexectest"
)

func TestParseBzImageReadsHeader(t *testing.T) {
	bz, err := ParseBzImage(bytes.NewReader(kexectest.BzImage(0x020f, "6.1.0-48-amd64 (debian-kernel@lists.debian.org) #1 SMP")))
	if err != nil {
		t.Fatal(err)
	}
	if bz.Release() != "6.1.0-48-amd64" || bz.ProtocolString() != "2.15" || bz.CmdlineSize != 2047 || bz.SetupSects != 4 || !bz.Relocatable {
		t.Errorf("got %+v", bz)
	}
	if err := bz.FileLoadable(); err != nil {
		t.Errorf("FileLoadable: %v", err)
	}
}

func TestParseBzImageSaysWhatIsWrongAndWhere(t *testing.T) {
	good := kexectest.BzImage(0x020f, "6.1.0")
	mod := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a bzImage: 0 bytes is too short"},
		{"elf", []byte("\x7fELF" + strings.Repeat("\x00", 1024)), "not a bzImage: boot flag 0x0000 at offset 0x1fe, want 0xaa55"},
		{"no HdrS", mod(func(b []byte) { copy(b[offHeader:], "Hdr!") }), `not a bzImage: no HdrS signature at offset 0x202 (found "Hdr!")`},
		{"old protocol", mod(func(b []byte) { b[offVersion] = 4 }), "boot protocol 2.04 at offset 0x206 is too old for kexec (need >= 2.06)"},
		{"truncated", good[:0x220], "truncated setup header: 544 bytes"},
		{"no cmdline size", mod(func(b []byte) { binary.LittleEndian.PutUint32(b[offCmdlineSize:], 0) }), "cmdline_size at offset 0x238 is 0"},
		{"version outside setup", mod(func(b []byte) { binary.LittleEndian.PutUint16(b[offKernelVer:], 0x1000) }), "kernel_version at offset 0x20e (0x1000): string at 0x1200 lies outside the 0xa00 byte setup area"},
		{"unterminated version", mod(func(b []byte) { copy(b[0x300:], strings.Repeat("x", 300)) }), "has no NUL within 256 bytes"},
		{"binary version", mod(func(b []byte) { b[0x301] = 0xff }), "has byte 0xff at 1"},
	} {
		_, err := ParseBzImage(bytes.NewReader(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestFileLoadableExplainsWhatKexecFileLoadNeeds(t *testing.T) {
	bz, err := ParseBzImage(bytes.NewReader(kexectest.BzImage(0x020a, "old")))
	if err != nil {
		t.Fatal(err)
	}
	if err := bz.FileLoadable(); err == nil || !strings.Contains(err.Error(), "2.10 < 2.12") {
		t.Errorf("got %v", err)
	}
	bz.Protocol, bz.XLoadFlags = 0x020f, 0
	if err := bz.FileLoadable(); err == nil || !strings.Contains(err.Error(), "XLF_KERNEL_64") {
		t.Errorf("got %v", err)
	}
}

func TestCheckCmdlineRefusesWhatTheKernelWouldNot(t *testing.T) {
	bz := &BzImage{CmdlineSize: 2048}
	if err := bz.CheckCmdline(strings.Repeat("a", 2047)); err != nil {
		t.Errorf("2047 bytes: %v", err)
	}
	if err := bz.CheckCmdline(strings.Repeat("a", 2048)); err == nil || !strings.Contains(err.Error(), "2048 bytes, the kernel takes at most 2047") {
		t.Errorf("2048 bytes: %v", err)
	}
	if err := bz.CheckCmdline("a\x00b"); err == nil {
		t.Error("NUL accepted")
	}
}

func TestParseBzImageReadsRealDebianKernel(t *testing.T) {
	root := os.Getenv("FERRY_KERNEL_ROOT")
	if root == "" {
		t.Skip("FERRY_KERNEL_ROOT not set (dpkg -x a linux-image .deb and point it there)")
	}
	matches, _ := filepath.Glob(filepath.Join(root, "boot/vmlinuz-*"))
	if len(matches) == 0 {
		t.Skipf("no boot/vmlinuz-* under FERRY_KERNEL_ROOT=%s", root)
	}
	f, err := os.Open(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bz, err := ParseBzImage(f)
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimPrefix(filepath.Base(matches[0]), "vmlinuz-")
	t.Logf("%s: protocol %s, cmdline_size %d, version %q", matches[0], bz.ProtocolString(), bz.CmdlineSize, bz.Version)
	if bz.Release() != release || !strings.HasPrefix(bz.Version, release+" ") {
		t.Errorf("version %q, want release %q", bz.Version, release)
	}
	if err := bz.FileLoadable(); err != nil {
		t.Errorf("FileLoadable: %v", err)
	}
	if bz.CmdlineSize < 2047 {
		t.Errorf("cmdline_size %d", bz.CmdlineSize)
	}
}

func FuzzParseBzImage(f *testing.F) {
	f.Add(kexectest.BzImage(0x020f, "6.1.0-48-amd64 (debian) #1"))
	f.Add(kexectest.BzImage(0x0206, ""))
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, data []byte) {
		bz, err := ParseBzImage(bytes.NewReader(data))
		if err != nil {
			return
		}
		if bz.Protocol < minProtocol || bz.CmdlineSize == 0 || len(bz.Version) >= maxVersion {
			t.Fatalf("accepted %+v", bz)
		}
		_ = bz.Release()
		_ = bz.FileLoadable()
	})
}

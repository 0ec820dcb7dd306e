package kmod

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"strings"
)

type compression struct {
	magic []byte
	name  string
	ext   string
}

// compressions lists the compressed module formats the kernel knows, by magic
// bytes and file extension.
func compressions() []compression {
	return []compression{
		{[]byte("\xfd7zXZ\x00"), "xz", ".ko.xz"},
		{[]byte("\x28\xb5\x2f\xfd"), "zstd", ".ko.zst"},
		{[]byte("\x1f\x8b"), "gzip", ".ko.gz"},
	}
}

// compressedExt reports the compression named by a module file's extension.
func compressedExt(path string) (string, bool) {
	for _, c := range compressions() {
		if strings.HasSuffix(path, c.ext) {
			return c.name, true
		}
	}
	return "", false
}

// ModuleStem returns the module name a file name stands for ("foo-bar.ko.xz"
// -> "foo-bar") and whether the file is a module at all.
func ModuleStem(base string) (string, bool) {
	if s, ok := strings.CutSuffix(base, ".ko"); ok {
		return s, s != ""
	}
	for _, c := range compressions() {
		if s, ok := strings.CutSuffix(base, c.ext); ok {
			return s, s != ""
		}
	}
	return "", false
}

// ReadInfoFile reads the .modinfo section of the module file at path.
// A compressed module (.ko.xz, .ko.zst, .ko.gz) is decompressed in memory.
func ReadInfoFile(path string) (Info, error) {
	if _, ok := compressedExt(path); ok {
		data, err := readModuleImage(path)
		if err != nil {
			return Info{}, err
		}
		info, err := ReadInfo(bytes.NewReader(data))
		if err != nil {
			return Info{}, fmt.Errorf("%s: %w", path, err)
		}
		return info, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	info, err := ReadInfo(f)
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// ReadInfo reads the .modinfo section of a plain (uncompressed) module.
// Compressed (ReadInfoFile decompresses) and non-ELF input are refused with an error naming what was
// found.
func ReadInfo(r io.ReaderAt) (Info, error) {
	var magic [6]byte
	n, err := r.ReadAt(magic[:], 0)
	if n < 4 {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("file is %d bytes long", n)
		}
		return Info{}, fmt.Errorf("not an ELF module: %w", err)
	}
	for _, c := range compressions() {
		if bytes.HasPrefix(magic[:n], c.magic) {
			return Info{}, fmt.Errorf("%s-compressed module: decompress it first (ReadInfoFile does)", c.name)
		}
	}
	if !bytes.HasPrefix(magic[:n], []byte(elf.ELFMAG)) {
		return Info{}, fmt.Errorf("not an ELF module: magic %q at offset 0, want %q", magic[:4], elf.ELFMAG)
	}
	ef, err := elf.NewFile(r)
	if err != nil {
		return Info{}, fmt.Errorf("not a valid ELF module: %w", err)
	}
	defer ef.Close()
	if ef.Type != elf.ET_REL {
		return Info{}, fmt.Errorf("ELF type %v, want ET_REL: not a kernel module", ef.Type)
	}
	s := ef.Section(".modinfo")
	if s == nil {
		return Info{}, fmt.Errorf("no .modinfo section: not a kernel module")
	}
	if s.Type == elf.SHT_NOBITS {
		return Info{}, fmt.Errorf(".modinfo section has no contents (SHT_NOBITS)")
	}
	if s.Size > maxModinfoSize {
		return Info{}, fmt.Errorf(".modinfo section is %d bytes, limit %d", s.Size, maxModinfoSize)
	}
	data := make([]byte, s.Size)
	if _, err := s.ReadAt(data, 0); err != nil {
		return Info{}, fmt.Errorf(".modinfo section at offset %#x: %w", s.Offset, err)
	}
	return ParseModinfo(data)
}

package kmod

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// maxModuleSize bounds a decompressed module in memory: Debian's largest
// (amdgpu) is about 20 MiB.
const maxModuleSize = 128 << 20

// Newer distributions ship their modules compressed (Debian 13: .ko.xz,
// Fedora and Arch: .ko.zst). The kernel decompresses them itself only with
// CONFIG_MODULE_DECOMPRESS and finit_module's MODULE_INIT_COMPRESSED_FILE
// flag; ferry decompresses in user space instead and loads the image with
// init_module(2), which works with any kernel.

// decompressModule returns the plain ELF image of a compressed module,
// read from r, whose format is named by name ("xz", "zstd", "gzip").
func decompressModule(r io.Reader, name string) ([]byte, error) {
	var dr io.Reader
	switch name {
	case "xz":
		x, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		dr = x
	case "zstd":
		z, err := zstd.NewReader(r, zstd.WithDecoderMaxMemory(maxModuleSize), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer z.Close()
		dr = z
	case "gzip":
		g, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		dr = g
	default:
		return nil, fmt.Errorf("unknown module compression %q", name)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(dr, maxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if n > maxModuleSize {
		return nil, fmt.Errorf("%s: decompresses to more than %d bytes", name, maxModuleSize)
	}
	return buf.Bytes(), nil
}

// sniffCompression names the compression of data by its magic bytes, or "".
func sniffCompression(data []byte) string {
	for _, c := range compressions() {
		if bytes.HasPrefix(data, c.magic) {
			return c.name
		}
	}
	return ""
}

// readModuleImage returns the plain ELF image of the module file at path,
// decompressed when its extension or magic says it is compressed.
func readModuleImage(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var magic [6]byte
	n, _ := io.ReadFull(f, magic[:])
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	name := sniffCompression(magic[:n])
	if name == "" {
		if c, ok := compressedExt(path); ok {
			return nil, fmt.Errorf("%s: named %s-compressed but has no %s magic", path, c, c)
		}
		data, err := io.ReadAll(io.LimitReader(f, maxModuleSize+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(data) > maxModuleSize {
			return nil, fmt.Errorf("%s: more than %d bytes", path, maxModuleSize)
		}
		return data, nil
	}
	data, err := decompressModule(f, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

// ReadInfoImage reads the .modinfo of a module file's bytes, plain or
// compressed (found inside an archive rather than on disk).
func ReadInfoImage(data []byte) (Info, error) {
	if name := sniffCompression(data); name != "" {
		img, err := decompressModule(bytes.NewReader(data), name)
		if err != nil {
			return Info{}, err
		}
		data = img
	}
	return ReadInfo(bytes.NewReader(data))
}

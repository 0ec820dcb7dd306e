package initrd

import (
	"fmt"
	"io/fs"
	"os"

	"ferry/internal/atomicfile"
)

// BuildOptions tunes Build.
type BuildOptions struct {
	Compression Compression // None (default), Gzip, LZ4 or Zstd
}

// BaseFiles are the nodes every image needs before its init runs: the
// console (so the kernel can open fd 0-2 for init) and the mount points.
func BaseFiles() []File {
	return []File{
		{Path: "dev", Mode: fs.ModeDir | 0o755},
		{Path: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Major: 5, Minor: 1},
		{Path: "proc", Mode: fs.ModeDir | 0o755},
		{Path: "sys", Mode: fs.ModeDir | 0o755},
		{Path: "run", Mode: fs.ModeDir | 0o755},
		{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
}

// Build writes a deterministic single-segment image to outPath: the base
// files plus files (which may override base entries by path). The same
// inputs give the same bytes. The output is written atomically.
func Build(outPath string, files []File, opt BuildOptions) error {
	switch opt.Compression {
	case None, Gzip, LZ4, Zstd:
	default:
		return fmt.Errorf("build compression %s: want none, gzip, lz4 or zstd", opt.Compression)
	}
	all, err := mergeBase(files)
	if err != nil {
		return err
	}
	return atomicfile.WriteFunc(outPath, 0o644, func(f *os.File) error {
		_, _, err := writeSegment(f, all, opt.Compression)
		if err != nil {
			return fmt.Errorf("build %s: %w", outPath, err)
		}
		return nil
	})
}

// mergeBase adds the base files that files do not name themselves.
func mergeBase(files []File) ([]File, error) {
	seen := make(map[string]bool)
	for i, f := range files {
		p, err := CleanPath(f.Path)
		if err != nil {
			return nil, fmt.Errorf("file %d: %w", i, err)
		}
		seen[p] = true
	}
	all := append([]File{}, files...)
	for _, b := range BaseFiles() {
		if !seen[b.Path] {
			all = append(all, b)
		}
	}
	return all, nil
}

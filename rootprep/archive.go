package rootprep

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"

	"ferry/internal/atomicfile"
)

// Archive packs the root at dir (directly under Roots) into
// Archives/NAME-YYYYmmddTHHMMSSZ.tar.zst, mode 0600 since a root may hold
// the borrower's secrets, then deletes the root. It returns the archive's
// path. The archive appears whole or not at all; the root is deleted only
// once the archive is synced.
func (p *Preparer) Archive(ctx context.Context, dir string) (string, Stats, error) {
	name, err := p.root(dir)
	if err != nil {
		return "", Stats{}, err
	}
	out := filepath.Join(p.Archives, name+"-"+time.Now().UTC().Format("20060102T150405Z")+".tar.zst")
	f, err := os.CreateTemp(p.Archives, "."+name+".tar.zst.tmp-")
	if err != nil {
		return "", Stats{}, fmt.Errorf("rootprep: %w", err)
	}
	st, err := p.writeArchive(ctx, f, filepath.Join(p.Roots, name))
	if err == nil {
		err = os.Rename(f.Name(), out)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", st, fmt.Errorf("rootprep: archive %s: %w", dir, err)
	}
	atomicfile.SyncDir(p.Archives)
	p.Log.Info("root archived", "root", dir, "archive", out, "files", st.Files, "bytes", st.Bytes)
	return out, st, p.Delete(ctx, dir)
}

// writeArchive writes root as tar.zst into f, syncs and closes it.
func (p *Preparer) writeArchive(ctx context.Context, f *os.File, root string) (Stats, error) {
	zw, err := zstd.NewWriter(f, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return Stats{}, err
	}
	st, err := tarTree(ctx, zw, root, p.progress())
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return st, err
}

package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"

	"ferry/initrd"
	"ferry/kexec"
	"ferry/kmod"
)

// Size bounds on what Add copies.
const (
	MaxKernel = 256 << 20
	MaxInitrd = 4 << 30
)

// copyHashed copies at most max bytes of src into dst (created 0644) and
// returns the artifact with its digest and size. It works on the copy, so
// the checks that follow see exactly the stored bytes.
func copyHashed(src, dst, field string, max int64) (Artifact, error) {
	in, err := os.Open(src)
	if err != nil {
		return Artifact{}, fmt.Errorf("%s: %w", field, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Artifact{}, fmt.Errorf("%s: %w", field, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(in, max+1))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return Artifact{}, fmt.Errorf("%s: copy %s: %w", field, src, err)
	case n > max:
		return Artifact{}, fmt.Errorf("%s %s: larger than %d bytes", field, src, max)
	}
	return Artifact{File: path.Base(dst), SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, Path: dst}, nil
}

// checkKernel parses the stored kernel's setup header and checks that the
// command line fits; name is the caller's path, for errors.
func checkKernel(stored, name, cmdline string) (*kexec.BzImage, error) {
	f, err := os.Open(stored)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bz, err := kexec.ParseBzImage(f)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", name, err)
	}
	if bz.Release() == "" {
		return nil, fmt.Errorf("kernel %s: no release in the version string", name)
	}
	if err := bz.CheckCmdline(cmdline); err != nil {
		return nil, fmt.Errorf("kernel %s: cmdline: %w", name, err)
	}
	return bz, nil
}

// scanInitrd reads every segment and entry of the stored initrd, as
// `ferry initrd check` does, and returns the normalised names of the kernel
// modules it holds. Errors carry the scanner's segment and offset, under
// the caller's name for the file.
func scanInitrd(stored, name string) (map[string]bool, error) {
	f, err := os.Open(stored)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	mods := map[string]bool{}
	sc := initrd.Scanner{Name: name}
	_, err = sc.Scan(f, st.Size(), func(_ *initrd.Segment, e *initrd.Entry, body io.Reader) error {
		if stem, ok := kmod.ModuleStem(path.Base(e.Name)); ok && e.FileMode().IsRegular() {
			mods[kmod.NormalizeName(stem)] = true
		}
		_, err := io.Copy(io.Discard, body)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	return mods, nil
}

package agent

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"ferry/initrd"
	"ferry/kmod"
)

// The borrower's module bundle (catalog: images/NAME/modules.cpio) holds
// what B's kernel needs for the transfer and initrd(B) may lack: ESP and
// its crypto, tun, the NFS client, NIC drivers. It is a newc archive of
// ferry/modules/**.ko built for B's release. A fetches it with B, digest
// checked, and appends its modules, and only those, to initrd(B).

// maxBundle bounds the bundle: the transfer set of a distribution kernel
// is a few MiB.
const maxBundle = 256 << 20

// maxBundleFiles bounds the files taken from it.
const maxBundleFiles = 4096

// bundleFiles reads the fetched bundle into files for the appended
// segment. Every entry must be a directory or a regular module file under
// ferry/modules/; anything else (a device, a symlink, a path elsewhere)
// refuses the bundle: it would land in B's initramfs.
func bundleFiles(p string) ([]initrd.File, []string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	prefix := strings.TrimPrefix(ModuleDir, "/") + "/"
	var files []initrd.File
	var names []string
	_, err = initrd.Scan(f, st.Size(), "module bundle", func(_ *initrd.Segment, e *initrd.Entry, body io.Reader) error {
		if e.IsTrailer() {
			return nil
		}
		name := path.Clean(strings.TrimPrefix(e.Name, "/"))
		mode := e.FileMode()
		switch {
		case mode.IsDir():
			return nil // only files are taken; Patch makes their parents
		case !mode.IsRegular():
			return fmt.Errorf("module bundle: %q is %v, not a module file", e.Name, mode.Type())
		case !strings.HasPrefix(name, prefix) || strings.Contains(name, ".."):
			return fmt.Errorf("module bundle: %q is not under %s", e.Name, prefix)
		case !isModuleFile(name):
			return fmt.Errorf("module bundle: %q is not a kernel module (.ko, .ko.xz, .ko.zst, .ko.gz)", e.Name)
		case len(files) >= maxBundleFiles:
			return fmt.Errorf("module bundle: more than %d files", maxBundleFiles)
		}
		var b bytes.Buffer
		if _, err := io.Copy(&b, io.LimitReader(body, maxBundle)); err != nil {
			return fmt.Errorf("module bundle: %s: %w", e.Name, err)
		}
		files = append(files, initrd.File{Path: "/" + name, Mode: 0o644, Data: b.Bytes()})
		names = append(names, path.Base(name))
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return files, names, nil
}

// mergeFiles appends extra to files; a path in both keeps extra's.
func mergeFiles(files, extra []initrd.File) []initrd.File {
	over := make(map[string]bool, len(extra))
	for _, f := range extra {
		over[f.Path] = true
	}
	out := files[:0:0]
	for _, f := range files {
		if !over[f.Path] {
			out = append(out, f)
		}
	}
	return append(out, extra...)
}

func isModuleFile(name string) bool {
	_, ok := kmod.ModuleStem(path.Base(name))
	return ok
}

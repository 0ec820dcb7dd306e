package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"ferry/internal/atomicfile"
)

// File names inside an image's directory.
const (
	kernelFile = "vmlinuz"
	initrdFile = "initrd.img"
	bundleFile = "modules.cpio"
)

// Dir is a Catalog kept as files under Root: Root/NAME/{manifest.json,
// vmlinuz, initrd.img, modules.cpio}. Names starting with '.' under Root
// are work in progress and never images.
type Dir struct {
	Root string
	// Modules overrides TransferModules when not nil.
	Modules []string
	Log     *slog.Logger
}

var _ Catalog = (*Dir)(nil)

// Open makes Root if needed and returns the catalogue kept there.
func Open(root string, log *slog.Logger) (*Dir, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("catalogue %s: %w", root, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dir{Root: root, Log: log}, nil
}

// Add checks the kernel and initrd, copies them (and the module bundle, when
// modulesDir is given) into a new image directory and renames it into
// place. Adding the same content under the same name again returns the
// stored image; different content under a taken name is ErrExists.
func (d *Dir) Add(ctx context.Context, name, kernelPath, initrdPath, cmdline, modulesDir string) (Image, error) {
	if err := ValidateName(name); err != nil {
		return Image{}, err
	}
	tmp, err := os.MkdirTemp(d.Root, ".add-"+name+"-")
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	im, err := d.assemble(ctx, tmp, name, kernelPath, initrdPath, cmdline, modulesDir)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", name, err)
	}
	return d.commit(ctx, tmp, im)
}

// assemble copies and checks everything into tmp and writes the manifest.
func (d *Dir) assemble(ctx context.Context, tmp, name, kernelPath, initrdPath, cmdline, modulesDir string) (Image, error) {
	im := Image{Name: name, Cmdline: cmdline, Added: time.Now().UTC().Truncate(time.Second)}
	var err error
	if im.Kernel, err = copyHashed(kernelPath, filepath.Join(tmp, kernelFile), "kernel", MaxKernel); err != nil {
		return Image{}, err
	}
	bz, err := checkKernel(im.Kernel.Path, kernelPath, cmdline)
	if err != nil {
		return Image{}, err
	}
	im.Release = bz.Release()
	if im.Initrd, err = copyHashed(initrdPath, filepath.Join(tmp, initrdFile), "initrd", MaxInitrd); err != nil {
		return Image{}, err
	}
	inInitrd, err := scanInitrd(im.Initrd.Path, initrdPath)
	if err != nil {
		return Image{}, err
	}
	if err := ctx.Err(); err != nil {
		return Image{}, err
	}
	if modulesDir != "" {
		if im.Modules, err = d.bundle(tmp, modulesDir, im.Release, inInitrd); err != nil {
			return Image{}, err
		}
	}
	if err := im.validate(); err != nil {
		return Image{}, err
	}
	return im, writeManifest(filepath.Join(tmp, manifestFile), im)
}

func (d *Dir) bundle(tmp, modulesDir, release string, inInitrd map[string]bool) (*Bundle, error) {
	want := d.Modules
	if want == nil {
		want = TransferModules()
	}
	mods, present, err := planBundle(modulesDir, release, want, inInitrd, d.Modules == nil)
	if err != nil {
		return nil, err
	}
	a, names, err := writeBundle(filepath.Join(tmp, bundleFile), mods)
	if err != nil {
		return nil, err
	}
	return &Bundle{Artifact: a, Names: names, Present: present}, nil
}

// commit renames tmp to Root/NAME, or settles a name already taken.
func (d *Dir) commit(ctx context.Context, tmp string, im Image) (Image, error) {
	dst := filepath.Join(d.Root, im.Name)
	if err := os.Rename(tmp, dst); err == nil {
		atomicfile.SyncDir(d.Root)
		d.Log.Info("image added", "image", im.Name, "release", im.Release,
			"kernel_sha256", im.Kernel.SHA256, "initrd_sha256", im.Initrd.SHA256, "modules", bundleCount(im))
		return d.Get(ctx, im.Name)
	}
	old, err := d.Get(ctx, im.Name)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: cannot place it: %w", im.Name, err)
	}
	if !old.sameContent(im) {
		return Image{}, fmt.Errorf("image %s (kernel %s, initrd %s): %w", im.Name, old.Kernel.SHA256[:12], old.Initrd.SHA256[:12], ErrExists)
	}
	return old, nil
}

func bundleCount(im Image) int {
	if im.Modules == nil {
		return 0
	}
	return len(im.Modules.Names)
}

// Get reads and validates an image's manifest and fills in the paths.
func (d *Dir) Get(_ context.Context, name string) (Image, error) {
	if err := ValidateName(name); err != nil {
		return Image{}, err
	}
	dir := filepath.Join(d.Root, name)
	data, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return Image{}, fmt.Errorf("image %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", name, err)
	}
	im, err := ParseManifest(bytes.NewReader(data))
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %s: %w", name, filepath.Join(dir, manifestFile), err)
	}
	if im.Name != name {
		return Image{}, fmt.Errorf("image %s: manifest names %q", name, im.Name)
	}
	im.Kernel.Path = filepath.Join(dir, im.Kernel.File)
	im.Initrd.Path = filepath.Join(dir, im.Initrd.File)
	if im.Modules != nil {
		im.Modules.Path = filepath.Join(dir, im.Modules.File)
	}
	return im, nil
}

// List returns every image, sorted by name. An unreadable image does not
// hide the others: it is left out and named in the returned error.
func (d *Dir) List(ctx context.Context) ([]Image, error) {
	ents, err := os.ReadDir(d.Root)
	if err != nil {
		return nil, fmt.Errorf("catalogue %s: %w", d.Root, err)
	}
	var ims []Image
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		im, err := d.Get(ctx, e.Name())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ims = append(ims, im)
	}
	sort.Slice(ims, func(i, j int) bool { return ims[i].Name < ims[j].Name })
	return ims, errors.Join(errs...)
}

// Remove takes an image out of the catalogue: it is renamed away first, so
// it disappears at once, then its files are deleted.
func (d *Dir) Remove(ctx context.Context, name string) error {
	if _, err := d.Get(ctx, name); err != nil {
		return err
	}
	gone, err := os.MkdirTemp(d.Root, ".rm-"+name+"-")
	if err != nil {
		return fmt.Errorf("image %s: %w", name, err)
	}
	if err := os.Rename(filepath.Join(d.Root, name), filepath.Join(gone, name)); err != nil {
		os.Remove(gone)
		return fmt.Errorf("image %s: %w", name, err)
	}
	atomicfile.SyncDir(d.Root)
	d.Log.Info("image removed", "image", name)
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("image %s: removed, but deleting its files: %w", name, err)
	}
	return nil
}

func writeManifest(p string, im Image) error {
	data, err := encodeManifest(im)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("manifest %s: %w", p, err)
	}
	return nil
}

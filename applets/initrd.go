package applets

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"ferry/initrd"
	"ferry/kmod"
)

func initrdApplet() Applet {
	return Applet{
		Name:    "initrd",
		Summary: "list, check, patch, build and extract initramfs images",
		Run:     runInitrd,
	}
}

const initrdUsage = `initrd ls FILE | check FILE | patch IN -o OUT --add SRC:DST... |
       build -o OUT [--kernel-modules DIR --module NAME...] [--add SRC:DST...] | extract FILE DIR`

func runInitrd(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: %s", initrdUsage)
	}
	sub := map[string]func(*Env, []string) error{
		"ls": initrdLs, "check": initrdCheck, "patch": initrdPatch,
		"build": initrdBuild, "extract": initrdExtract,
	}
	if args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprintf(env.Stdout, "usage: %s\nRun 'initrd SUBCOMMAND --help' for its options.\n", initrdUsage)
		return nil
	}
	run, ok := sub[args[0]]
	if !ok {
		return usagef("unknown subcommand %q: %s", args[0], initrdUsage)
	}
	return run(env, args[1:])
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// positionals parses flags anywhere in args and wants exactly n positionals.
func positionals(fs *flag.FlagSet, args []string, n int, what string) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		return nil, usagef("want %s, got %d argument(s)", what, len(pos))
	}
	return pos, nil
}

func openImage(p string) (*os.File, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

func initrdLs(env *Env, args []string) error {
	fs := newFlags(env, "initrd ls", "initrd ls FILE   (list every entry of every segment)")
	pos, err := positionals(fs, args, 1, "FILE")
	if err != nil {
		return err
	}
	f, size, err := openImage(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = initrd.Scan(f, size, pos[0], func(s *initrd.Segment, e *initrd.Entry, _ io.Reader) error {
		line := fmt.Sprintf("%d %-5s %s %10d %s", s.Index, s.Compression, e.ModeString(), e.Size, e.Name)
		if e.Link != "" {
			line += " -> " + e.Link
		}
		_, err := fmt.Fprintln(env.Stdout, line)
		return err
	})
	return err
}

func initrdCheck(env *Env, args []string) error {
	fs := newFlags(env, "initrd check", "initrd check FILE   (read every segment and entry; non-zero exit on the first problem)")
	pos, err := positionals(fs, args, 1, "FILE")
	if err != nil {
		return err
	}
	f, size, err := openImage(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	segs, err := initrd.Scan(f, size, pos[0], func(_ *initrd.Segment, _ *initrd.Entry, body io.Reader) error {
		_, err := io.Copy(io.Discard, body)
		return err
	})
	if err != nil {
		return err
	}
	for _, s := range segs {
		fmt.Fprintf(env.Stdout, "segment %d: %s at %#x, %d bytes (%d decompressed), %d entries, %d archive(s)\n",
			s.Index, s.Compression, s.Offset, s.Length, s.DataSize, s.Entries, s.Archives)
	}
	return nil
}

// addFiles turns --add SRC:DST arguments into archive files.
func addFiles(adds []string) ([]initrd.File, error) {
	var files []initrd.File
	for _, a := range adds {
		src, dst, err := initrd.ParseAdd(a)
		if err != nil {
			return nil, usagef("--add %v", err)
		}
		fl, err := initrd.FilesFrom(src, dst)
		if err != nil {
			return nil, fmt.Errorf("--add %s: %w", a, err)
		}
		files = append(files, fl...)
	}
	return files, nil
}

func initrdPatch(env *Env, args []string) error {
	fs := newFlags(env, "initrd patch", "initrd patch IN -o OUT --add SRC:DST... [--compress none|gzip|lz4]")
	out := fs.String("o", "", "output image (written atomically; must differ from IN)")
	comp := fs.String("compress", "none", "compression of the new segment: none, gzip or lz4")
	var adds listFlag
	fs.Var(&adds, "add", "SRC:DST: add host file, directory tree or symlink SRC at DST (repeatable)")
	pos, err := positionals(fs, args, 1, "IN")
	if err != nil {
		return err
	}
	c, err := initrd.ParseCompression(*comp)
	if err != nil || (c != initrd.None && c != initrd.Gzip && c != initrd.LZ4) {
		return usagef("--compress %q: want none, gzip or lz4", *comp)
	}
	if *out == "" || len(adds) == 0 {
		return usagef("need -o OUT and at least one --add SRC:DST")
	}
	files, err := addFiles(adds)
	if err != nil {
		return err
	}
	rep, err := initrd.Patch(pos[0], *out, files, initrd.PatchOptions{Compression: c})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s: %s\n", *out, rep)
	return nil
}

func initrdBuild(env *Env, args []string) error {
	fs := newFlags(env, "initrd build", "initrd build -o OUT [--kernel-modules DIR [--module NAME...] [--esp]] [--add SRC:DST...] [--compress none|gzip|lz4|zstd]")
	out := fs.String("o", "", "output image (written atomically)")
	kdir := fs.String("kernel-modules", "", "directory of a kernel's modules (lib/modules/RELEASE)")
	comp := fs.String("compress", "none", "compression: none, gzip, lz4 or zstd (zstd: smallest that unpacks fast; scripts/bench.sh measures them)")
	var adds, mods listFlag
	fs.Var(&adds, "add", "SRC:DST: add host file, directory tree or symlink SRC at DST (repeatable)")
	fs.Var(&mods, "module", "module NAME to include with its dependencies (repeatable)")
	esp := fs.Bool("esp", false, "also the modules kernel IPsec ESP needs (those the kernel has as modules)")
	var nicClass, nicPCI listFlag
	fs.Var(&nicClass, "nics", "NIC drivers by class: ethernet (every Ethernet driver plus virtual NICs) or virtual (repeatable)")
	fs.Var(&nicPCI, "nic-pci", "VVVV:DDDD: the drivers of the network card with this PCI id (repeatable)")
	if _, err := positionals(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	c, err := initrd.ParseCompression(*comp)
	if err != nil || (c != initrd.None && c != initrd.Gzip && c != initrd.LZ4 && c != initrd.Zstd) {
		return usagef("--compress %q: want none, gzip, lz4 or zstd", *comp)
	}
	if *out == "" || ((len(mods) > 0 || *esp || len(nicClass) > 0 || len(nicPCI) > 0) && *kdir == "") {
		return usagef("need -o OUT, and --kernel-modules DIR with --module, --esp, --nics or --nic-pci")
	}
	if len(nicClass) > 0 || len(nicPCI) > 0 {
		nics, err := nicModules(*kdir, nicClass, nicPCI)
		if err != nil {
			return err
		}
		mods = append(mods, nics...)
	}
	files := selfFiles()
	mf, err := moduleFiles(*kdir, mods, *esp)
	if err != nil {
		return err
	}
	extra, err := addFiles(adds)
	if err != nil {
		return err
	}
	files = append(append(files, mf...), extra...)
	if err := initrd.Build(*out, files, initrd.BuildOptions{Compression: c}); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s: %d files, %d modules\n", *out, len(files), len(mf))
	return nil
}

// selfFiles puts this binary at /bin/ferry, once, with /init and
// /bin/APPLET symlinks to it: the kernel follows the /init link, the
// applet is chosen by the name it was started as, and the image carries
// the binary's bytes one time instead of two.
func selfFiles() []initrd.File {
	const exe = "/proc/self/exe"
	files := []initrd.File{
		{Path: "init", Link: "bin/ferry"},
		{Path: "bin/ferry", Mode: 0o755, Src: exe},
	}
	for _, a := range All() {
		files = append(files, initrd.File{Path: "bin/" + a.Name, Link: "ferry"})
	}
	return files
}

// moduleFiles resolves names with their dependencies under dir and places
// them at /lib/modules/<basename of dir>/<path relative to dir>. With esp it
// adds those of kmod.ESPModules that dir has as modules: the others are
// built in or absent, and the agent falls back to user-space ESP then. A
// named module that is missing is an error.
func moduleFiles(dir string, names []string, esp bool) ([]initrd.File, error) {
	if len(names) == 0 && !esp {
		return nil, nil
	}
	want := names
	if esp {
		want = append(slices.Clone(names), kmod.ESPModules()...)
	}
	mods, missing, err := kmod.ResolveAvailable(dir, want)
	for _, m := range missing {
		if slices.Contains(names, m) {
			err = errors.Join(err, fmt.Errorf("kmod: module %q not found under %s", m, dir))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("modules from %s: %w", dir, err)
	}
	base := filepath.Base(filepath.Clean(dir))
	files := make([]initrd.File, 0, len(mods))
	for _, m := range mods {
		files = append(files, initrd.File{Path: path.Join("lib/modules", base, m.Rel), Mode: 0o644, Src: m.Path})
	}
	return files, nil
}

// nicModules names the NIC drivers of the classes and PCI ids under dir.
func nicModules(dir string, classes, pciIDs []string) ([]string, error) {
	tree, err := kmod.OpenTree(dir)
	if err != nil {
		return nil, fmt.Errorf("modules from %s: %w", dir, err)
	}
	var names []string
	for _, c := range classes {
		n, err := tree.NICModules(c)
		if err != nil {
			return nil, usagef("--nics: %v", err)
		}
		names = append(names, n...)
	}
	var mas []string
	for _, id := range pciIDs {
		ma, err := kmod.PCIModaliases(id)
		if err != nil {
			return nil, usagef("--nic-pci: %v", err)
		}
		mas = append(mas, ma...)
	}
	if len(mas) > 0 {
		matched := kmod.MatchAliases(tree.Aliases(), mas)
		if len(matched) == 0 {
			return nil, fmt.Errorf("--nic-pci %v: no driver under %s", pciIDs, dir)
		}
		names = append(names, matched...)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func initrdExtract(env *Env, args []string) error {
	fs := newFlags(env, "initrd extract", "initrd extract FILE DIR   (unpack every segment, confined to DIR)")
	pos, err := positionals(fs, args, 2, "FILE DIR")
	if err != nil {
		return err
	}
	rep, err := initrd.Extract(pos[0], pos[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s: %d entries from %d segments into %s (%d device/fifo/socket nodes skipped)\n",
		pos[0], rep.Entries, rep.Segments, pos[1], rep.Skipped)
	return nil
}

package applets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	"ferry/buildinfo"
	"ferry/kexec"
)

const kexecUsage = `kexec -l KERNEL [--initrd=FILE] [--command-line=STRING | --append=STRING] [--reuse-cmdline] [-s | -c]
       kexec -f KERNEL [same options]   load and reboot into it at once
       kexec -e
       kexec -u [-s | -c]
       kexec -v

As kexec-tools: silent on success (-d prints what it does), exit status 0
done, 1 a bad invocation or nothing loaded, 255 the kernel refused (as
kexec-tools' EFAILED). -x and -y are accepted (ferry never takes
interfaces down; -e always syncs). Not supported, refused with exit 1:
-p (a crash kernel: use kexec-tools for kdump), and no action at all
(kexec-tools would call shutdown(8): use -l then your shutdown, or -f).`

func kexecApplet() Applet {
	return Applet{
		Name:    "kexec",
		Summary: "load a kernel and initramfs, and reboot into it (kexec-tools forms)",
		Run:     runKexec,
	}
}

// kexecRequest is one parsed kexec invocation.
type kexecRequest struct {
	load, exec, unload bool
	force, debug       bool
	kernel, initrd     string
	appendCmdline      string
	reuseCmdline       bool
	version            bool
	opt                kexec.Options
}

// loadFlag is -l/--load. kexec-tools takes the kernel as a positional
// argument ("-l KERNEL", "-l --initrd=F KERNEL"), so -l is a boolean flag;
// "-l=KERNEL" is accepted too.
type loadFlag struct {
	set    *bool
	kernel *string
}

func (f loadFlag) IsBoolFlag() bool { return true }
func (f loadFlag) String() string   { return "" }
func (f loadFlag) Set(v string) error {
	*f.set = true
	if v != "true" {
		*f.kernel = v
	}
	return nil
}

// parseKexecArgs accepts the kexec-tools forms that scripts use. Go's flag
// package treats -x and --x alike and takes values as "--x=V" or "--x V".
func parseKexecArgs(env *Env, args []string) (*kexecRequest, error) {
	r := &kexecRequest{}
	fs := newFlags(env, "kexec", kexecUsage)
	lf := loadFlag{set: &r.load, kernel: &r.kernel}
	fs.Var(lf, "l", "load KERNEL (the first argument) for a later -e")
	fs.Var(lf, "load", "same as -l")
	fs.BoolVar(&r.exec, "e", false, "reboot into the loaded kernel now")
	fs.BoolVar(&r.exec, "exec", false, "same as -e")
	fs.BoolVar(&r.force, "f", false, "load KERNEL and reboot into it at once (no shutdown(8), as kexec-tools' -f)")
	fs.BoolVar(&r.force, "force", false, "same as -f")
	fs.BoolVar(&r.debug, "d", false, "print what is done, and u-root's debug output, on stderr")
	fs.BoolVar(&r.debug, "debug", false, "same as -d")
	var version, panicLoad, noIfdown, noSync bool
	fs.BoolVar(&version, "v", false, "print the version and exit")
	fs.BoolVar(&version, "version", false, "same as -v")
	fs.BoolVar(&panicLoad, "p", false, "refused: crash kernels (kdump) need kexec-tools")
	fs.BoolVar(&panicLoad, "load-panic", false, "same as -p")
	fs.BoolVar(&noIfdown, "x", false, "accepted: ferry takes no interface down")
	fs.BoolVar(&noIfdown, "no-ifdown", false, "same as -x")
	fs.BoolVar(&noSync, "y", false, "accepted: -e syncs the filesystems anyway")
	fs.BoolVar(&noSync, "no-sync", false, "same as -y")
	fs.BoolVar(&r.unload, "u", false, "unload the loaded kernel")
	fs.BoolVar(&r.unload, "unload", false, "same as -u")
	fs.StringVar(&r.initrd, "initrd", "", "initramfs `FILE` for the new kernel")
	fs.StringVar(&r.initrd, "ramdisk", "", "same as --initrd")
	fs.StringVar(&r.appendCmdline, "command-line", "", "kernel command `STRING` (added after --reuse-cmdline's)")
	fs.StringVar(&r.appendCmdline, "append", "", "same as --command-line")
	fs.BoolVar(&r.reuseCmdline, "reuse-cmdline", false, "start from /proc/cmdline, without BOOT_IMAGE= and initrd=")
	fs.BoolVar(&r.opt.ForceFile, "s", false, "use kexec_file_load only (no fallback)")
	fs.BoolVar(&r.opt.ForceFile, "kexec-file-syscall", false, "same as -s")
	fs.BoolVar(&r.opt.ForceLegacy, "c", false, "use kexec_load only")
	fs.BoolVar(&r.opt.ForceLegacy, "kexec-syscall", false, "same as -c")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	switch {
	case version:
		return &kexecRequest{version: true}, nil
	case panicLoad:
		return nil, usagef("-p (--load-panic): crash kernels are not supported by ferry's kexec; use kexec-tools for kdump")
	case r.force:
		r.load, r.exec = true, true
	case !r.load && !r.exec && !r.unload && len(pos) > 0:
		return nil, usagef("no action: kexec-tools would load %s and call shutdown(8), which ferry's kexec does not; use -l (then shut down) or -f", pos[0])
	}
	n := 0
	for _, b := range []bool{r.load && !r.force, r.exec && !r.force, r.unload, r.force} {
		if b {
			n++
		}
	}
	switch {
	case n != 1:
		return nil, usagef("exactly one of -l, -f, -e and -u is needed")
	case r.opt.ForceFile && r.opt.ForceLegacy:
		return nil, usagef("-s and -c exclude each other")
	case r.load && r.kernel == "" && len(pos) == 1:
		r.kernel = pos[0]
	case r.load && r.kernel == "" && len(pos) == 0:
		return nil, usagef("-l and -f need a KERNEL")
	case len(pos) > 0:
		return nil, usagef("unexpected argument %q", pos[0])
	}
	if r.exec && !r.force && (r.initrd != "" || r.appendCmdline != "" || r.reuseCmdline) {
		return nil, usagef("--initrd, --command-line and --reuse-cmdline go with -l or -f")
	}
	if !r.load && (r.initrd != "" || r.appendCmdline != "" || r.reuseCmdline) {
		return nil, usagef("--initrd, --command-line and --reuse-cmdline go with -l")
	}
	return r, nil
}

// cmdline builds the new kernel's command line; proc reads /proc/cmdline.
func (r *kexecRequest) cmdline(proc func() (string, error)) (string, error) {
	base := ""
	if r.reuseCmdline {
		s, err := proc()
		if err != nil {
			return "", fmt.Errorf("--reuse-cmdline: %w", err)
		}
		base = kexec.ReuseCmdline(s)
	}
	return kexec.AppendCmdline(base, r.appendCmdline), nil
}

// kexecFailed is kexec-tools' exit status when the kernel refuses
// (EFAILED, -1, returned from main).
const kexecFailed = 255

// runKexec behaves as kexec-tools' kexec for the forms it takes: silent on
// success, 1 for a bad invocation or nothing to reboot into, 255 when a
// syscall fails. u-root's loader logs through the standard logger: that
// is muted unless -d.
func runKexec(ctx context.Context, env *Env, args []string) error {
	r, err := parseKexecArgs(env, args)
	if err != nil {
		var ue *UsageError
		if errors.As(err, &ue) {
			return &ExitError{Code: 1, Err: err}
		}
		return err
	}
	if r.version {
		fmt.Fprintf(env.Stdout, "kexec (ferry %s), kexec-tools compatible\n", buildinfo.Read().Version)
		return nil
	}
	debug := func(format string, a ...any) {}
	if r.debug {
		log.SetOutput(env.Stderr)
		debug = func(format string, a ...any) { fmt.Fprintf(env.Stderr, "kexec: "+format+"\n", a...) }
	} else {
		log.SetOutput(io.Discard)
	}
	failed := func(err error) error { return &ExitError{Code: kexecFailed, Err: err} }
	if r.unload {
		if err := kexec.Unload(r.opt); err != nil {
			return failed(err)
		}
		debug("unloaded")
		return nil
	}
	if r.load {
		cmdline, err := r.cmdline(func() (string, error) {
			b, err := os.ReadFile("/proc/cmdline")
			return string(b), err
		})
		if err != nil {
			return &ExitError{Code: 1, Err: err}
		}
		for _, f := range []string{r.kernel, r.initrd} {
			if _, err := os.Stat(f); f != "" && err != nil {
				return &ExitError{Code: 1, Err: fmt.Errorf("cannot open %s: %w", f, err)} // kexec-tools dies: 1
			}
		}
		debug("loading %s, initrd %q, command line %q", r.kernel, r.initrd, cmdline)
		m, err := kexec.Load(r.kernel, r.initrd, cmdline, r.opt)
		if err != nil {
			return failed(err)
		}
		debug("%s loaded with %s", r.kernel, m)
	}
	if !r.exec {
		return nil
	}
	if loaded, err := kexec.Loaded(); err != nil || !loaded {
		return &ExitError{Code: 1, Err: fmt.Errorf("Nothing has been loaded! (load a kernel with -l first)")}
	}
	debug("rebooting into the loaded kernel")
	return failed(kexec.Exec())
}

package applets

import (
	"context"
	"fmt"
	"os"

	"ferry/kexec"
)

const kexecUsage = `kexec -l KERNEL [--initrd=FILE] [--command-line=STRING | --append=STRING] [--reuse-cmdline] [-s | -c]
       kexec -e
       kexec -u [-s | -c]`

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
	kernel, initrd     string
	appendCmdline      string
	reuseCmdline       bool
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
	n := 0
	for _, b := range []bool{r.load, r.exec, r.unload} {
		if b {
			n++
		}
	}
	switch {
	case n != 1:
		return nil, usagef("exactly one of -l, -e and -u is needed")
	case r.opt.ForceFile && r.opt.ForceLegacy:
		return nil, usagef("-s and -c exclude each other")
	case r.load && r.kernel == "" && len(pos) == 1:
		r.kernel = pos[0]
	case r.load && r.kernel == "" && len(pos) == 0:
		return nil, usagef("-l needs a KERNEL")
	case len(pos) > 0:
		return nil, usagef("unexpected argument %q", pos[0])
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

func runKexec(ctx context.Context, env *Env, args []string) error {
	r, err := parseKexecArgs(env, args)
	if err != nil {
		return err
	}
	switch {
	case r.unload:
		if err := kexec.Unload(r.opt); err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, "kexec: unloaded")
		return nil
	case r.exec:
		return kexec.Exec()
	}
	cmdline, err := r.cmdline(func() (string, error) {
		b, err := os.ReadFile("/proc/cmdline")
		return string(b), err
	})
	if err != nil {
		return err
	}
	env.Log.Info("kexec load", "kernel", r.kernel, "initrd", r.initrd, "cmdline", cmdline)
	m, err := kexec.Load(r.kernel, r.initrd, cmdline, r.opt)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "kexec: %s loaded with %s\n", r.kernel, m)
	return nil
}

package applets

import (
	"context"
	"errors"
	"fmt"

	"ferry/buildinfo"
	"ferry/nfsroot"
)

func switchRootApplet() Applet {
	return Applet{
		Name:    "switch_root",
		Summary: "delete the initramfs, make NEWROOT the root and exec its init (PID 1 only)",
		Run:     runSwitchRoot,
	}
}

// runSwitchRoot takes util-linux's and busybox's forms:
// switch_root [-c CONSOLE] NEWROOT INIT [ARGS...], and -V. Flags end at
// NEWROOT, so INIT's own arguments may look like flags. As util-linux's, it
// prints nothing and never returns on success, and returns 1 on any
// failure, a bad invocation included.
func runSwitchRoot(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "switch_root", "switch_root [-c CONSOLE] NEWROOT INIT [ARGS...]\n       switch_root -V")
	console := fs.String("c", "", "reopen stdin, stdout and stderr on `CONSOLE` (e.g. /dev/console) before exec'ing INIT")
	version := fs.Bool("V", false, "print the version and exit")
	if err := parseFlags(fs, args); err != nil {
		var ue *UsageError
		if errors.As(err, &ue) {
			return &ExitError{Code: 1, Err: err}
		}
		return err
	}
	if *version {
		fmt.Fprintf(env.Stdout, "switch_root (ferry %s), util-linux compatible\n", buildinfo.Read().Version)
		return nil
	}
	if fs.NArg() < 2 {
		return &ExitError{Code: 1, Err: usagef("need NEWROOT and INIT (see 'switch_root --help')")}
	}
	newRoot, init := fs.Arg(0), fs.Arg(1)
	// Refuse while stderr is still ours to complain on.
	if err := nfsroot.CheckSwitchRoot(newRoot, init); err != nil {
		return err
	}
	if *console != "" {
		if err := nfsroot.ReopenConsole(*console); err != nil {
			return err
		}
	}
	// Returns only on failure: on success INIT replaces this process.
	return nfsroot.SwitchRoot(newRoot, init, fs.Args()[2:])
}

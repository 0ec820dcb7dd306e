package applets

import (
	"context"

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
// switch_root [-c CONSOLE] NEWROOT INIT [ARGS...]. Flags end at NEWROOT,
// so INIT's own arguments may look like flags.
func runSwitchRoot(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "switch_root", "switch_root [-c CONSOLE] NEWROOT INIT [ARGS...]")
	console := fs.String("c", "", "reopen stdin, stdout and stderr on `CONSOLE` (e.g. /dev/console) before exec'ing INIT")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return usagef("need NEWROOT and INIT")
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

package applets

import (
	"context"
	"flag"
	"fmt"

	"ferry/keeper"
)

func shutdownApplet() Applet {
	return Applet{
		Name:    "shutdown",
		Summary: "systemd-shutdown's hand-off (/run/initramfs/shutdown, PID 1 only): stop the keepers, then power off",
		Run:     runShutdown,
		RawArgs: true,
	}
}

// runShutdown is exec'd by systemd-shutdown as /shutdown VERB [ITS OWN
// FLAGS...] (image B placed ferry at /run/initramfs/shutdown). Its flags
// (--log-level, --timeout ...) are systemd-shutdown's and are ignored. As
// PID 1 it never returns.
func runShutdown(ctx context.Context, env *Env, args []string) error {
	verb := "poweroff"
	if len(args) > 0 {
		verb = args[0]
	}
	if verb == "-h" || verb == "--help" || verb == "help" {
		fmt.Fprintln(env.Stdout, "usage: /shutdown VERB [systemd-shutdown's flags...]  (as PID 1, exec'd by systemd-shutdown from /run/initramfs)")
		fmt.Fprintln(env.Stdout, "Remounts the network file systems read-only, stops the @ferry keepers (they delete their tunnels), syncs and does VERB:")
		fmt.Fprintln(env.Stdout, "poweroff, reboot, halt or kexec.")
		return flag.ErrHelp
	}
	return keeper.FinalShutdown(verb, env.Log)
}

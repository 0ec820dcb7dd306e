package applets

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"ferry/agent"
)

func initApplet() Applet {
	return Applet{
		Name:    "init",
		Summary: "the early-boot agent: PID 1 of image A (kexec into B) and of image B (NFS root)",
		Run:     runInit,
	}
}

func runInit(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "init", "init   (run by the kernel as /init in image A or rdinit= in image B)")
	force := fs.Bool("not-pid1", false, "run although not PID 1 (for tests; it still mounts and kexecs)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if os.Getpid() != 1 && !*force {
		return fmt.Errorf("must run as PID 1, the first process of an initramfs (pid is %d)", os.Getpid())
	}
	if err := agent.EarlyMounts(); err != nil {
		fmt.Fprintf(env.Stderr, "ferry: early mounts: %v\n", err)
	}
	out := env.Stderr
	if con, err := agent.OpenConsole(); err == nil {
		out = con
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return haltEarly(out, fmt.Errorf("kernel command line: %w", err))
	}
	a, err := agent.New(out, log, string(cmdline))
	if err != nil {
		return haltEarly(out, fmt.Errorf("kernel command line: %w", err))
	}
	a.ArmPanicReboot("/proc/sys/kernel/panic")
	err = a.Run(ctx)
	// Run returns only on failure; the phase line has said what failed.
	fmt.Fprintf(out, "ferry: transfer stopped: %v\n", err)
	agent.Halt(a.OnFailure())
	return err
}

// haltEarly ends PID 1 when the command line that says how to end it
// cannot be read: as on_failure's default does, by a reboot (PID 1
// returning would panic the kernel, which then hangs).
func haltEarly(out io.Writer, err error) error {
	fmt.Fprintf(out, "ferry: transfer stopped: %v\n", err)
	agent.Halt("reboot")
	return err
}

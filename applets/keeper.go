package applets

import (
	"context"

	"ferry/keeper"
)

func keeperApplet() Applet {
	return Applet{
		Name:    "keeper",
		Summary: "long-lived process that survives switch_root (stands in for the tunnel keeper)",
		Run:     runKeeper,
	}
}

func runKeeper(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "keeper", "keeper [--listen ADDR] [--trace ID] [--state DIR]")
	listen := fs.String("listen", ":7070", "address for GET /status")
	trace := fs.String("trace", "", "trace id of this transfer")
	state := fs.String("state", "/ferry/state", "state directory to report on")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	k := keeper.New(keeper.Options{Trace: *trace, Listen: *listen, StateDir: *state}, env.Log)
	return k.Run(ctx)
}

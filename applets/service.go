package applets

import (
	"context"
	"os"

	"ferry/internal/sdnotify"
)

// serviceNotify tells systemd (Type=notify, $NOTIFY_SOCKET) how a server
// applet is doing: the returned ready sends READY=1 once every listener is
// up, and STOPPING=1 goes out as soon as ctx ends (SIGTERM), before the
// server finishes what is in flight. Outside systemd both do nothing.
func serviceNotify(ctx context.Context, env *Env, what string) (ready func()) {
	n := sdnotify.FromEnv(os.Getenv)
	if !n.Enabled() {
		return func() {}
	}
	send := func(lines ...string) {
		if err := n.Notify(lines...); err != nil {
			env.Log.Warn(what+": telling systemd", "err", err)
		}
	}
	context.AfterFunc(ctx, func() { send(sdnotify.Stopping, "STATUS=stopping") })
	return func() { send(sdnotify.Ready, "STATUS=serving") }
}

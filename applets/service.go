package applets

import (
	"context"
	"os"
	"time"

	"ferry/internal/sdnotify"
)

// service tells systemd (Type=notify, $NOTIFY_SOCKET) how a server
// applet is doing. Outside systemd its methods do nothing.
type service struct {
	send    func(lines ...string)
	stopped chan struct{} // closed once STOPPING=1 is sent
}

// serviceNotify is the service of a server applet: STOPPING=1 goes out
// as soon as ctx ends (SIGTERM), before the server finishes what is in
// flight.
func serviceNotify(ctx context.Context, env *Env, what string) *service {
	n := sdnotify.FromEnv(os.Getenv)
	if !n.Enabled() {
		return &service{send: func(...string) {}}
	}
	s := &service{send: func(lines ...string) {
		if err := n.Notify(lines...); err != nil {
			env.Log.Warn(what+": telling systemd", "err", err)
		}
	}, stopped: make(chan struct{})}
	context.AfterFunc(ctx, func() { s.send(sdnotify.Stopping, "STATUS=stopping"); close(s.stopped) })
	return s
}

// Close, deferred by the applet, lets STOPPING=1 out before the process
// exits: AfterFunc sends it from a goroutine of its own, which a server
// with nothing in flight would otherwise outrun. It waits only when the
// context has ended (a server that failed on its own sends nothing),
// and a second at most.
func (s *service) Close(ctx context.Context) {
	if s.stopped == nil || ctx.Err() == nil {
		return
	}
	select {
	case <-s.stopped:
	case <-time.After(time.Second):
	}
}

// Ready sends READY=1: once every listener serves, and again when a
// reload is over (applied or refused), which ends systemd's "reloading".
func (s *service) Ready() { s.send(sdnotify.Ready, "STATUS=serving") }

// Reloading sends RELOADING=1 with MONOTONIC_USEC as a reload starts:
// `systemctl reload` and `systemctl status` show the unit reloading
// until the next Ready.
func (s *service) Reloading() {
	s.send(append(sdnotify.ReloadingNow(), "STATUS=reloading the configuration")...)
}

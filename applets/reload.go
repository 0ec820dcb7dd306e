package applets

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"ferry/configfile"
)

// reloadOnHangup turns each SIGHUP into a configuration read and checked
// by load, sent on the returned channel; one that fails its checks is
// logged with every problem and not sent, so the running one stays.
// Each SIGHUP tells systemd RELOADING=1 (svc); a refused reload READY=1
// at once, a sent one when its receiver has applied it (svc.Ready).
// SIGHUP no longer ends the process from the moment this returns; stop
// undoes that.
func reloadOnHangup[C any](ctx context.Context, env *Env, svc *service, what string, load func() (C, *configfile.Report, error)) (<-chan C, func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	out := make(chan C)
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			svc.Reloading()
			env.Log.Info(what + ": SIGHUP: reloading the configuration")
			c, r, err := load()
			if err == nil {
				err = r.Err()
			}
			if err != nil {
				env.Log.Error(what+": reload refused, the running configuration stays", "err", err)
				svc.Ready()
				continue
			}
			for _, w := range r.Warnings() {
				env.Log.Warn(what+": reload check", "warning", w.String())
			}
			for _, n := range r.Infos() {
				env.Log.Info(what+": reload check", "note", n.String())
			}
			select {
			case out <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, func() { signal.Stop(hup); cancel() }
}

package keeper

import (
	"context"
	"sync"
	"time"
)

// leaveEvery is how often the keeper looks at PID 1 and the mount table
// between mount-table changes (which wake it at once where the kernel
// signals them, leave_linux.go).
const leaveEvery = 250 * time.Millisecond

// leaveGrace bounds how long a keeper told to stop (SIGTERM) waits for the
// network file systems to turn read-only before it exits without DELETE.
const leaveGrace = 10 * time.Second

// leaver deletes the tunnel once, whoever sees the moment first.
type leaver struct {
	once sync.Once
	done chan struct{}
	// close deletes the tunnel; tests count the calls instead.
	close func(context.Context)
	// kept, when set, hears why each look of watchLeave kept the tunnel:
	// tests wait for looks, not for time.
	kept func(why string)
}

func newLeaver() *leaver { return &leaver{done: make(chan struct{})} }

// leave sends the IKE DELETE and closes the data plane, once.
func (k *Keeper) leave(why string) {
	k.leaving.once.Do(func() {
		k.log.Info("the root no longer needs the tunnel: deleting it (IKE DELETE to the gateway)", "why", why)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if k.leaving.close != nil {
			k.leaving.close(ctx)
		} else {
			k.tunnel.Close(ctx)
		}
		close(k.leaving.done)
	})
}

// watchLeave deletes the tunnel as soon as leaveDue says it may, until
// ctx ends. It wakes on every change of the mount table: systemd-shutdown
// remounts / read-only, syncs and calls reboot(2) within milliseconds.
func (k *Keeper) watchLeave(ctx context.Context) {
	w := newMountWatch(k.opt.Mountinfo, k.log)
	defer w.close()
	saidRO := false
	for {
		ok, why := k.leaveDue(false)
		if ok {
			k.leave(why)
			return
		}
		if k.leaving.kept != nil {
			k.leaving.kept(why)
		}
		// An init that is not systemd never says it is going down (sysvinit
		// stays PID 1; sendsigs spares the keeper): say when the root's data
		// is safe, so that a log shows the shutdown got that far even if the
		// power goes before any DELETE (the gateway then learns by DPD).
		if !saidRO && k.shutdownAsked.Load() {
			if ro, what := k.networkFSReleased(); ro {
				saidRO = true
				k.log.Info("the network root is read-only after the shutdown request (synced); the tunnel stays while init may still read it",
					"mounts", what)
			}
		}
		if !w.wait(ctx, leaveEvery) {
			return
		}
	}
}

// leaveOnExit runs when the keeper is told to stop (SIGTERM: busybox's or
// sysvinit's kill of all processes). It deletes the tunnel once the
// network file systems are read-only, waiting for that at most
// leaveGrace; a root still writable then keeps its SAs (in the kernel
// plane they outlive the keeper) and the gateway learns by DPD.
func (k *Keeper) leaveOnExit() {
	select {
	case <-k.leaving.done:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveGrace)
	defer cancel()
	w := newMountWatch(k.opt.Mountinfo, k.log)
	defer w.close()
	var why string
	for {
		var ok bool
		if ok, why = k.leaveDue(true); ok {
			k.leave(why)
			return
		}
		if !w.wait(ctx, leaveEvery) {
			break
		}
	}
	k.log.Warn("stopping without deleting the tunnel: the root may still need it; the gateway will see dead-peer detection",
		"why", why)
}

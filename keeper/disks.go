package keeper

import (
	"context"
	"os"
	"slices"
	"time"

	"ferry/disks"
)

// watchDisks keeps B's disks-ro watch for the whole lease: a block device
// that appears after switch_root (the root's udev loads a disk driver
// that B's initrd lacked, a hot-plugged drive) is marked read-only as it
// appears, like those B marked. The keeper is chrooted into the root
// before /sys is moved there, so it waits for /sys/block first. The
// BLKROSET flag guards against accidents, not against the root's root
// user (docs/SECURITY.md).
func (k *Keeper) watchDisks(ctx context.Context) {
	for {
		if _, err := os.Stat("/sys/block"); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
	w := disks.Watch(k.opt.DisksReadOnly, k.log, func(name string) {
		k.log.Warn("disk appeared while the root runs: marked read-only", "device", name)
		k.opt.Parent.DiskMarked(name)
	})
	k.disks.Store(w)
	k.log.Info("watching for disks for the whole lease", "read_only_already", k.opt.DisksReadOnly)
	<-ctx.Done()
	w.Stop()
}

// disksLate lists the disks the keeper's watch marked.
func (k *Keeper) disksLate() []string {
	late := k.opt.DisksLate // marked by the keepers before this one
	if w := k.disks.Load(); w != nil {
		late = merge(slices.Clip(late), w.Late()...)
	}
	return late
}

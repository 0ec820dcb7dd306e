package ike

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"
)

// Target is what an initiator asks for.
type Target struct {
	Gateway       netip.Addr     // the responder's address
	RemoteSubnets []netip.Prefix // TSr wanted; default everything
	VirtualIP     bool           // ask for an inner address (CP request)
}

// Connect opens an IKE SA and its first CHILD_SA to t.Gateway and waits
// until both are up or failed.
func (d *Daemon) Connect(ctx context.Context, t Target) error {
	if len(t.RemoteSubnets) == 0 {
		t.RemoteSubnets = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	}
	result := make(chan error, 1)
	d.mu.Lock()
	now := time.Now()
	sa := &ikeSA{initiator: true, origin: true, spii: d.newSPI(), st: stInitSent, remote: netip.AddrPortFrom(t.Gateway, d.cfg.Port),
		ni: nonce(), created: now, lastRecv: now, result: result, target: t}
	d.sas[sa.spii] = sa
	err := d.sendInit(sa, d.cfg.IKEPolicy.DH[0])
	d.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		d.mu.Lock()
		d.removeSA(sa, "connect cancelled")
		d.mu.Unlock()
		return ctx.Err()
	}
}

func (d *Daemon) fail(sa *ikeSA, reason string) {
	d.log.Info("ike: connect failed", "gateway", sa.remote, "reason", reason)
	if sa.result != nil {
		sa.result <- errors.New("ike: " + reason)
		sa.result = nil
	}
	d.removeSA(sa, reason)
}

// Keep holds a tunnel to t open: it connects, and reconnects at once
// whenever no established SA to the gateway is left (deleted, or the
// gateway stopped answering liveness checks), backing off from 1 s up to
// Config.RetryMax between failed attempts. It returns when ctx ends.
func (d *Daemon) Keep(ctx context.Context, t Target) {
	wait := time.Second
	for ctx.Err() == nil {
		if !d.upTo(t.Gateway) {
			err := d.Connect(ctx, t)
			if err != nil {
				d.log.Warn("ike: tunnel not up, retrying", "gateway", t.Gateway, "in", wait, "err", err)
				sleep(ctx, wait)
				wait = min(2*wait, d.cfg.RetryMax)
				continue
			}
			wait = time.Second
		}
		select {
		case <-ctx.Done():
		case <-d.lost:
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// upTo reports whether a tunnel we opened to gw can carry traffic: an
// established IKE SA with a CHILD_SA that is neither expired nor
// replaced. An IKE SA whose CHILD_SA hard-expired (its rekeys failed)
// carries nothing: Keep replaces it with a fresh connection.
func (d *Daemon) upTo(gw netip.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, sa := range d.sas {
		if sa.origin && sa.st == stEstablished && sa.remote.Addr() == gw && slices.ContainsFunc(sa.children, func(c *child) bool { return !c.dead && !c.replaced }) {
			return true
		}
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

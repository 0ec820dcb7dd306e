package borrower

import (
	"context"
	"fmt"
	"slices"

	"ferry/api"
)

// phaseConflict is the lender's phase of a server whose boot two machines
// claimed (lender.PhaseConflict): the lender revoked the boot's
// certificate and no longer shows its key.
const phaseConflict = "conflict"

// keyDropper is a gateway that can take single servers' keys off, leaving
// the rest of their lease in.
type keyDropper interface {
	DropKeys(ctx context.Context, lease string, servers, pins []string) error
}

func (g allowGateway) DropKeys(ctx context.Context, _ string, _ []string, pins []string) error {
	_, err := g.f.Remove(ctx, pins...)
	return err
}

func (g *swanGateway) DropKeys(ctx context.Context, lease string, servers, _ []string) error {
	return g.Revoke(ctx, lease, servers)
}

// dropConflicted takes off the gateway the keys this borrower allowed for
// servers the lender now shows in conflict: whoever holds such a key may
// be the machine that won the race for the boot, so its tunnel goes (the
// gateway tears down a removed key's tunnel). got is the lender's new
// view of l.
func (m *Manager) dropConflicted(ctx context.Context, l Lease, got api.Lease) (Lease, error) {
	var servers, pins []string
	for _, s := range got.Servers {
		if s.Phase != phaseConflict {
			continue
		}
		for _, old := range l.Lender.Servers {
			if old.ID == s.ID && old.SPKIPin != "" && slices.Contains(l.Pins, old.SPKIPin) {
				servers, pins = append(servers, s.ID), append(pins, old.SPKIPin)
			}
		}
	}
	if len(pins) == 0 || m.gw == nil {
		return l, nil
	}
	d, ok := m.gw.(keyDropper)
	if !ok {
		return l, fmt.Errorf("lease %s: servers %v in conflict at the lender, but this gateway cannot drop single keys", l.ID, servers)
	}
	if err := d.DropKeys(ctx, got.ID, servers, pins); err != nil {
		return l, fmt.Errorf("lease %s: drop keys of servers %v in conflict: %w", l.ID, servers, err)
	}
	l.Pins = slices.DeleteFunc(l.Pins, func(p string) bool { return slices.Contains(pins, p) })
	m.log.Warn("keys dropped at the gateway: the lender put their servers in conflict", "lease", l.ID, "servers", servers, "pins", pins)
	return l, nil
}

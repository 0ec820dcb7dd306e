package borrower

import (
	"context"
	"fmt"
	"time"

	"ferry/api"
)

// ExtendLease asks the lender to lengthen an active lease by d from its
// end as last read from the lender, then moves the keys' end on the
// gateway's allow list. The new end is sent as an absolute time, so a
// retry after a lost answer extends once.
func (m *Manager) ExtendLease(ctx context.Context, id string, d time.Duration) (Lease, error) {
	l, err := m.Lease(ctx, id)
	if err != nil {
		return l, err
	}
	if l.State != StateActive || l.Lender.ID == "" {
		return l, &api.FieldError{Field: "lease", Reason: fmt.Sprintf("%s is %s: only an active lease is extended", id, l.State)}
	}
	if d < time.Minute {
		return l, &api.FieldError{Field: "duration", Reason: fmt.Sprintf("%s: want at least 1m", d)}
	}
	req := api.ExtendRequest{Until: l.Lender.Expires.Add(d)}
	var got api.Lease
	if err := m.lender.Call(ctx, "POST", api.PathLeases+"/"+l.Lender.ID+api.PathExtend, req, &got); err != nil {
		return l, fmt.Errorf("extend lease %s (lender %s): %w", l.ID, l.Lender.ID, err)
	}
	l.Lender = got
	if err := m.put(ctx, l); err != nil {
		return l, err
	}
	if keys := allowed(l); len(keys) > 0 && m.gw != nil {
		if err := m.gw.Allow(ctx, keys...); err != nil {
			return l, fmt.Errorf("lease %s extended to %s, but the gateway keys still end earlier: %w", l.ID, got.Expires, err)
		}
	}
	m.log.Info("lease extended", "lease", l.ID, "lender_lease", l.Lender.ID, "until", got.Expires)
	return l, nil
}

package borrower

import (
	"context"
	"errors"
	"time"

	"ferry/api"
)

// LeaseView is what `lease show` gets: the stored lease, refreshed from
// the lender when it answers, and each server's tunnel as the gateway
// reports it now.
type LeaseView struct {
	Lease
	// Stale is set when the lender could not be asked (a WAN outage, the
	// lender down): the lease is shown as last stored, not refreshed.
	Stale   string        `json:"stale,omitempty"`
	Tunnels []TunnelState `json:"tunnels,omitempty"`
	// Events is the lease's history at the lender (power actions, state
	// changes, phases, errors), when the lender answers.
	Events []api.Event `json:"lender_events,omitempty"`
	// RootStates[i] is the preparation of Roots[i]: its copy's progress,
	// when it was ready, and how long its server waited for it.
	RootStates []RootState `json:"root_states,omitempty"`
}

// TunnelState is one server's tunnel at the gateway.
type TunnelState struct {
	Server  string    `json:"server"`
	State   string    `json:"state"` // "up", "down", or "unknown" (the gateway did not answer)
	Since   time.Time `json:"since,omitzero"`
	Address string    `json:"address,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// showRefreshTimeout bounds lease show's refresh from the lender.
const showRefreshTimeout = 5 * time.Second

// errLender marks a refresh that failed because the lender could not be
// reached or answered with an error.
var errLender = errors.New("lender unreachable")

// View refreshes lease id from the lender and adds the tunnels. A lender
// that cannot be reached does not hide the stored lease: it is shown
// with Stale saying why.
func (m *Manager) View(ctx context.Context, id string) (LeaseView, error) {
	l, err := m.Lease(ctx, id)
	if err != nil {
		return LeaseView{}, err
	}
	v := LeaseView{Lease: l}
	// A WAN that drops packets would hold the answer for the lender
	// client's whole timeout: an operator looking at a lease waits less.
	rctx, cancel := context.WithTimeout(ctx, showRefreshTimeout)
	defer cancel()
	if l.State == StateReturned && poweringOff(l.Lender) {
		// The lender powers the servers off after the return: show its
		// progress (lease return --wait waits for it).
		var got api.Lease
		if err := m.lender.Call(rctx, "GET", api.PathLeases+"/"+l.Lender.ID, nil, &got); err == nil && got.ID == l.Lender.ID {
			l.Lender = got
			v.Lease = l
			if err := m.put(ctx, l); err != nil {
				return v, err
			}
		} else if err != nil {
			v.Stale = err.Error()
		}
		if v.Stale == "" {
			v.Events = m.lenderEvents(rctx, l)
		}
		v.RootStates, err = m.rootStates(ctx, l)
		return v, err
	}
	if fresh, err := m.Refresh(rctx, l); err == nil {
		v.Lease = fresh
	} else if errors.Is(err, errLender) {
		m.log.Warn("lease show: lender unreachable, showing the stored lease", "lease", id, "err", err)
		v.Stale = err.Error()
	} else {
		return v, err
	}
	v.Tunnels = m.tunnelStates(ctx, v.Lease)
	if v.Stale == "" {
		v.Events = m.lenderEvents(rctx, v.Lease)
	}
	if v.RootStates, err = m.rootStates(ctx, v.Lease); err != nil {
		return v, err
	}
	return v, nil
}

// lenderEvents is the lease's history at the lender; nil when it has
// none or does not answer (an older lender, the WAN down): lease show
// goes on without it.
func (m *Manager) lenderEvents(ctx context.Context, l Lease) []api.Event {
	if l.Lender.ID == "" {
		return nil
	}
	var ev []api.Event
	if err := m.lender.Call(ctx, "GET", api.PathLeases+"/"+l.Lender.ID+api.PathEvents, nil, &ev); err != nil {
		m.log.Debug("lease show: no history from the lender", "lease", l.ID, "err", err)
		return nil
	}
	return ev
}

// poweringOff says whether the lender still has a server of a returned
// lease to power off.
func poweringOff(l api.Lease) bool {
	for _, s := range l.Servers {
		if s.Phase != "returned" {
			return true
		}
	}
	return false
}

// tunnelStates reads the gateway's status once and says, for each server
// of l, whether its tunnel is up, since when and with which address.
func (m *Manager) tunnelStates(ctx context.Context, l Lease) []TunnelState {
	if len(l.Lender.Servers) == 0 || l.State != StateActive && l.State != StateReturning {
		return nil
	}
	out := make([]TunnelState, len(l.Lender.Servers))
	var peers []Peer
	var err error
	if m.tunnels == nil {
		err = errors.New("no gateway status configured")
	} else {
		peers, err = m.tunnels.Peers(ctx)
	}
	for i, s := range l.Lender.Servers {
		out[i] = TunnelState{Server: s.ID, State: "down"}
		if err != nil {
			out[i].State, out[i].Detail = "unknown", err.Error()
			continue
		}
		if p, ok := peerOf(l, s.ID, s.SPKIPin, peers); ok {
			out[i].State, out[i].Since, out[i].Address = "up", p.Since, p.VIP.String()
			if p.DataPath != "" {
				out[i].Detail = "data " + p.DataPath
			}
		}
	}
	return out
}

package lender

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"ferry/api"
	"ferry/power"
	"ferry/store"
)

// setServerError records a server's last failure, inside tx.
func setServerError(tx store.Tx, mac, reason string, now time.Time) error {
	var s Server
	if err := tx.Get(store.Servers, mac, &s); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil // removed meanwhile: nothing to show it on
		}
		return err
	}
	s.LastError, s.LastErrorAt = reason, now
	return tx.Put(store.Servers, mac, s)
}

// memberFailed moves member i of a lease from phase from to the failed
// phase to, with why as its error (on the member, the server and in both
// histories). A member that left from meanwhile (it enrolled, it was
// cleared, the lease ended) is left alone: the failure is history only.
func (m *Manager) memberFailed(ctx context.Context, leaseID string, i int, from, to, why string) {
	now := m.now().UTC()
	err := m.st.Update(ctx, func(tx store.Tx) error {
		mem, err := getMember(tx, leaseID, i)
		if err != nil {
			return err
		}
		if mem.Phase != from {
			return recordEvent(tx, Event{At: now, Kind: EventError, MAC: mem.MAC, Lease: leaseID, Source: "lender",
				What: fmt.Sprintf("%s ignored: the server is %s now", to, mem.Phase), Error: why})
		}
		mem.Phase, mem.Error = to, why
		if to == PhaseBootTimeout {
			mem.Tokens = nil // withdrawn below: a new boot needs `server clear`
			if err := dropTokens(tx, leaseID, i); err != nil {
				return err
			}
		}
		if err := putMember(tx, leaseID, i, mem); err != nil {
			return err
		}
		if err := setServerError(tx, mem.MAC, why, now); err != nil {
			return err
		}
		return recordEvent(tx, Event{At: now, Kind: EventState, MAC: mem.MAC, Lease: leaseID, Source: "lender",
			What: from + " -> " + to, Error: why})
	})
	if err != nil {
		m.log.Error("failure not recorded", "lease", leaseID, "index", i, "phase", to, "reason", why, "err", err)
	}
}

// retryPowerError moves a member in power-error back to booting, for a
// new boot at a restart.
func (m *Manager) retryPowerError(ctx context.Context, leaseID string, i int) error {
	now := m.now().UTC()
	return m.st.Update(ctx, func(tx store.Tx) error {
		mem, err := getMember(tx, leaseID, i)
		if err != nil || mem.Phase != PhasePowerError {
			return err
		}
		mem.Phase, mem.Error = PhaseBooting, ""
		if err := putMember(tx, leaseID, i, mem); err != nil {
			return err
		}
		return recordEvent(tx, Event{At: now, Kind: EventState, MAC: mem.MAC, Lease: leaseID, Source: "lender",
			What: "power-error -> booting: power on tried again at start"})
	})
}

// watchBoot puts a boot that has not enrolled after ttl in boot-timeout.
// The timer is cheap and fires once; a boot that enrolled, was cleared
// or ended is left alone then.
func (m *Manager) watchBoot(leaseID string, i int, mac, hash string, ttl time.Duration) {
	time.AfterFunc(ttl, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var mem member
		if err := m.st.View(ctx, func(tx store.Tx) (err error) { mem, err = getMember(tx, leaseID, i); return err }); err != nil {
			return
		}
		if mem.Boot != hash || mem.Phase != PhaseBooting {
			return
		}
		m.mu.Lock()
		if b, ok := m.boots[mac]; ok && b.hash == hash {
			delete(m.boots, mac)
		}
		m.mu.Unlock()
		why := fmt.Sprintf("no enrollment within the token's life (%s): check the server's console and netboot; 'ferry lender server clear %s' starts a new boot", ttl, mac)
		m.log.Warn("boot timed out", "lease", leaseID, "mac", mac, "ttl", ttl)
		m.memberFailed(ctx, leaseID, i, PhaseBooting, PhaseBootTimeout, why)
	})
}

// powerAction runs one power action and records it in the server's (and
// its lease's) history.
func (m *Manager) powerAction(ctx context.Context, s Server, leaseID, action string) error {
	if m.power == nil {
		return m.powerSwitch(ctx, s, action == "on") // nothing done but a log line: no history
	}
	start := m.now()
	err := m.powerSwitch(ctx, s, action == "on")
	e := Event{Kind: EventPower, MAC: s.MAC, Lease: leaseID, Source: "lender",
		What: fmt.Sprintf("power %s via %s: ok in %s", action, s.Power, m.now().Sub(start).Round(time.Millisecond))}
	if err != nil {
		e.What, e.Error = fmt.Sprintf("power %s via %s: failed", action, s.Power), err.Error()
	}
	m.record(ctx, e)
	return err
}

// serverView is a server as an operator reads it: a leased server shows
// its member's phase, and its state is the member's when that is one an
// operator must act on.
func serverView(tx store.Tx, s Server) Server {
	if s.LeaseID == "" || s.State != ServerLeased {
		return s
	}
	tx.Each(store.Members, s.LeaseID+"/", func(_ string, dec func(any) error) error {
		var mem member
		if dec(&mem) == nil && mem.MAC == s.MAC {
			s.Phase = mem.Phase
		}
		return nil
	})
	switch s.Phase {
	case PhasePowerError, PhaseBootTimeout, PhaseConflict:
		s.State = s.Phase
	}
	return s
}

// Server is one server as an operator reads it.
func (m *Manager) Server(ctx context.Context, mac string) (Server, error) {
	mac, err := api.NormalizeMAC(mac)
	if err != nil {
		return Server{}, &api.FieldError{Field: "mac", Reason: err.Error()}
	}
	var s Server
	err = m.st.View(ctx, func(tx store.Tx) error {
		if err := tx.Get(store.Servers, mac, &s); err != nil {
			return &api.FieldError{Field: "mac", Reason: fmt.Sprintf("%s is not in the inventory", mac)}
		}
		s = serverView(tx, s)
		return nil
	})
	return s, err
}

// SetMaintenance takes a free server out of lending (on) or puts it back
// (off). A leased server must be returned first: maintenance never
// interrupts a borrower.
func (m *Manager) SetMaintenance(ctx context.Context, mac string, on bool, note string) (Server, error) {
	mac, err := api.NormalizeMAC(mac)
	if err != nil {
		return Server{}, &api.FieldError{Field: "mac", Reason: err.Error()}
	}
	var s Server
	now := m.now().UTC()
	err = m.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.Get(store.Servers, mac, &s); err != nil {
			return &api.FieldError{Field: "mac", Reason: fmt.Sprintf("%s is not in the inventory", mac)}
		}
		was := s.State
		switch {
		case on && s.State == ServerLeased:
			return &api.FieldError{Field: "mac", Reason: fmt.Sprintf("%s is lent in lease %s; return it first", mac, s.LeaseID)}
		case on:
			s.State, s.Note = ServerMaintenance, note
		case s.State != ServerMaintenance:
			return &api.FieldError{Field: "mac", Reason: fmt.Sprintf("%s is %s, not in maintenance", mac, s.State)}
		default:
			s.State, s.Note, s.LastError, s.LastErrorAt = ServerFree, "", "", time.Time{}
		}
		if err := tx.Put(store.Servers, mac, s); err != nil {
			return err
		}
		what := was + " -> " + s.State
		if note != "" {
			what += ": " + note
		}
		return recordEvent(tx, Event{At: now, Kind: EventState, MAC: mac, Source: "operator", What: what})
	})
	return s, err
}

// Power actions an operator may ask for.
const (
	PowerOn     = "on"
	PowerOff    = "off"
	PowerStatus = "status"
	PowerCheck  = "check"
)

// PowerResult is what a power action or check found.
type PowerResult struct {
	MAC    string `json:"mac"`
	Driver string `json:"driver"`
	Action string `json:"action"`
	State  string `json:"state,omitempty"` // on, off, paused, unknown
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
}

// Power runs an operator's power action on one server: on, off, status,
// or check (the driver's configuration and that its BMC answers). On and
// off are recorded in the server's history; a failure is its last error.
func (m *Manager) Power(ctx context.Context, mac, action string) (PowerResult, error) {
	s, err := m.Server(ctx, mac)
	if err != nil {
		return PowerResult{}, err
	}
	r := PowerResult{MAC: s.MAC, Driver: s.Power, Action: action}
	switch action {
	case PowerOn, PowerOff:
		if err = m.powerAction(ctx, s, s.LeaseID, action); err == nil {
			r.State, r.OK = action, true
			return r, nil
		}
		r.Error = err.Error()
		now := m.now().UTC()
		if uerr := m.st.Update(ctx, func(tx store.Tx) error { return setServerError(tx, s.MAC, r.Error, now) }); uerr != nil {
			m.log.Warn("last error not recorded", "mac", s.MAC, "err", uerr)
		}
		return r, nil
	case PowerStatus, PowerCheck:
		st, err := m.powerState(ctx, s)
		r.State = string(st)
		if err != nil {
			r.Error = err.Error()
		} else {
			r.OK = true
		}
		return r, nil
	}
	return PowerResult{}, &api.FieldError{Field: "action", Reason: fmt.Sprintf("%q: want on, off, status or check", action)}
}

// powerState asks a server's driver for its state: the driver is built
// from the stored options (so a configuration error shows) and asked.
func (m *Manager) powerState(ctx context.Context, s Server) (power.State, error) {
	if m.power == nil {
		return power.StateUnknown, fmt.Errorf("no power driver wired in this lender")
	}
	d, err := m.power(s)
	if err != nil {
		return power.StateUnknown, fmt.Errorf("power driver %q of %s: %w", s.Power, s.MAC, err)
	}
	st, err := d.Status(ctx)
	m.metrics.powerAction(s.Power, "status", err)
	if err != nil {
		return power.StateUnknown, fmt.Errorf("power status %s via %s: %w", s.MAC, s.Power, err)
	}
	return st, nil
}

// Validate checks the power driver of the servers named (every server
// when none is): its options and that its BMC answers.
func (m *Manager) Validate(ctx context.Context, macs []string) ([]PowerResult, error) {
	var ss []Server
	if len(macs) == 0 {
		var err error
		if ss, err = m.Servers(ctx); err != nil {
			return nil, err
		}
	}
	for _, mac := range macs {
		s, err := m.Server(ctx, mac)
		if err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	out := []PowerResult{}
	for _, s := range ss {
		r := PowerResult{MAC: s.MAC, Driver: s.Power, Action: PowerCheck}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := m.powerState(sctx, s)
		cancel()
		r.State = string(st)
		if err != nil {
			r.Error = err.Error()
		} else {
			r.OK = true
		}
		out = append(out, r)
	}
	return out, nil
}

// powerErrorForBorrower replaces a power driver's reason in what a
// borrower reads: it names the lender's BMCs, sockets and secret files,
// which are no business of another organisation. The lender's operator
// reads the reason in server show, lease show and the history.
const powerErrorForBorrower = "the lender could not switch the server's power; the lender's operator has the reason"

// sees is l as o may read it: a borrower gets power errors without the
// driver's reason.
func (o owner) sees(l api.Lease) api.Lease {
	if o.operator {
		return l
	}
	servers := make([]api.LeaseServer, len(l.Servers))
	for i, s := range l.Servers {
		if s.Phase == PhasePowerError {
			s.Error = powerErrorForBorrower
		}
		servers[i] = s
	}
	l.Servers = servers
	return l
}

// seesEvents is a history as o may read it (see sees).
func (o owner) seesEvents(ev []Event) []Event {
	if o.operator {
		return ev
	}
	for i := range ev {
		if ev[i].Error != "" && (ev[i].Kind == EventPower || strings.HasSuffix(ev[i].What, "-> "+PhasePowerError)) {
			ev[i].Error = powerErrorForBorrower
		}
	}
	return ev
}

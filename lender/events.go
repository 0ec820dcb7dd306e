package lender

import (
	"context"
	"fmt"
	"time"

	"ferry/store"
)

// Event kinds: what an operator filters a history by.
const (
	EventState = "state" // the server or a lease member changed state
	EventPower = "power" // a power action and its outcome
	EventPhase = "phase" // an agent's phase report
	EventError = "error" // something failed that is not a power action
)

// maxEvents bounds the history kept per server and per lease: the oldest
// entries go first, as in Ironic's node history.
const maxEvents = 200

// Event is one entry of a server's and its lease's history, as MAAS
// events or Ironic node history: what happened, when, and why it failed.
type Event struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	MAC    string    `json:"mac,omitempty"`
	Lease  string    `json:"lease,omitempty"`
	What   string    `json:"what"`
	Error  string    `json:"error,omitempty"`
	Source string    `json:"source,omitempty"` // who caused it: lender, agent, operator
}

// Event history keys: "s/MAC/TIME" and "l/LEASE/TIME", TIME in
// nanoseconds, zero-padded so that key order is time order.
func serverEventsPrefix(mac string) string { return "s/" + mac + "/" }
func leaseEventsPrefix(id string) string   { return "l/" + id + "/" }

// recordEvent stores e, inside tx, under its server and its lease (each
// that is set), and drops the oldest beyond maxEvents.
func recordEvent(tx store.Tx, e Event) error {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	for _, p := range []string{serverEventsPrefix(e.MAC), leaseEventsPrefix(e.Lease)} {
		if p == "s//" || p == "l//" {
			continue
		}
		if err := appendEvent(tx, p, e); err != nil {
			return fmt.Errorf("event history %s: %w", p, err)
		}
	}
	return nil
}

func appendEvent(tx store.Tx, prefix string, e Event) error {
	var keys []string
	err := tx.Each(store.Events, prefix, func(k string, _ func(any) error) error {
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		return err
	}
	// Two events in one nanosecond (one transaction) keep their order.
	ns := e.At.UnixNano()
	key := fmt.Sprintf("%s%020d", prefix, ns)
	if n := len(keys); n > 0 && keys[n-1] >= key {
		var last int64
		fmt.Sscanf(keys[n-1][len(prefix):], "%d", &last)
		key = fmt.Sprintf("%s%020d", prefix, last+1)
	}
	for len(keys) >= maxEvents {
		if err := tx.Delete(store.Events, keys[0]); err != nil {
			return err
		}
		keys = keys[1:]
	}
	return tx.Put(store.Events, key, e)
}

// eventsOf reads a history, oldest first.
func eventsOf(tx store.Tx, prefix string) ([]Event, error) {
	out := []Event{}
	err := tx.Each(store.Events, prefix, func(_ string, dec func(any) error) error {
		var e Event
		if err := dec(&e); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// ServerEvents is a server's history, oldest first.
func (m *Manager) ServerEvents(ctx context.Context, mac string) ([]Event, error) {
	var out []Event
	err := m.st.View(ctx, func(tx store.Tx) (err error) {
		out, err = eventsOf(tx, serverEventsPrefix(mac))
		return err
	})
	return out, err
}

// LeaseEvents is a lease's history, oldest first.
func (m *Manager) LeaseEvents(ctx context.Context, id string) ([]Event, error) {
	var out []Event
	err := m.st.View(ctx, func(tx store.Tx) (err error) {
		out, err = eventsOf(tx, leaseEventsPrefix(id))
		return err
	})
	return out, err
}

// record stores one event in its own transaction, for what happens
// outside one (a power action in the background); a failure is logged,
// never in the way of the action.
func (m *Manager) record(ctx context.Context, e Event) {
	if e.At.IsZero() {
		e.At = m.now().UTC()
	}
	if err := m.st.Update(ctx, func(tx store.Tx) error { return recordEvent(tx, e) }); err != nil {
		m.log.Warn("event not recorded", "mac", e.MAC, "lease", e.Lease, "what", e.What, "err", err)
	}
}

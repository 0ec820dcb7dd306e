package lender

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"ferry/api"
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
type Event = api.Event

// Event history keys: "s/MAC/SEQ" and "l/LEASE/SEQ", SEQ zero-padded so
// that key order is insertion order; "s/MAC" and "l/LEASE" (no slash:
// outside the history's prefix) hold the history's window, so that
// adding an event is a constant number of reads and writes however long
// the history is (an enrollment records one).
func serverEventsPrefix(mac string) string { return "s/" + mac + "/" }
func leaseEventsPrefix(id string) string   { return "l/" + id + "/" }

// eventWindow is the sequence numbers a history holds: [First, Next).
type eventWindow struct {
	First uint64 `json:"first"`
	Next  uint64 `json:"next"`
}

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

// recordServerEvent stores e in its server's history only: for the one
// event of every enrollment, where a second history would cost the
// enrollment rate (the lease shows the member enrolled anyway).
func recordServerEvent(tx store.Tx, e Event) error {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	return appendEvent(tx, serverEventsPrefix(e.MAC), e)
}

func appendEvent(tx store.Tx, prefix string, e Event) error {
	wkey := strings.TrimSuffix(prefix, "/")
	var w eventWindow
	if err := tx.Get(store.Events, wkey, &w); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := tx.Put(store.Events, fmt.Sprintf("%s%020d", prefix, w.Next), e); err != nil {
		return err
	}
	w.Next++
	for w.Next-w.First > maxEvents {
		if err := tx.Delete(store.Events, fmt.Sprintf("%s%020d", prefix, w.First)); err != nil {
			return err
		}
		w.First++
	}
	return tx.Put(store.Events, wkey, w)
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

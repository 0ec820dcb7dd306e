package power

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Manual asks a person to do what a BMC would: it logs the instruction and
// waits until the person confirms by creating ConfirmFile (which it then
// removes), or until ctx ends.
type Manual struct {
	Name, ConfirmFile string
	Poll              time.Duration
	log               *slog.Logger
	mu                sync.Mutex
	state             State
}

func newManual(o *options, log *slog.Logger) (*Manual, error) {
	f, err := o.required("confirm_file")
	if err != nil {
		return nil, err
	}
	return &Manual{Name: o.get("name", "the server"), ConfirmFile: f, Poll: 200 * time.Millisecond, log: log, state: StateUnknown}, nil
}

func (m *Manual) On(ctx context.Context) error {
	return m.ask(ctx, "on", StateOn, "press the power button of %s to switch it ON")
}

func (m *Manual) Off(ctx context.Context) error {
	return m.ask(ctx, "off", StateOff, "hold the power button of %s to switch it OFF")
}

func (m *Manual) Reset(ctx context.Context) error {
	return m.ask(ctx, "reset", StateOn, "press the reset button of %s (or switch it off and on)")
}

// Status is the state the person last confirmed (unknown before that).
func (m *Manual) Status(ctx context.Context) (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, nil
}

func (m *Manual) ask(ctx context.Context, op string, after State, what string) error {
	if err := os.Remove(m.ConfirmFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return &Error{Driver: "manual", Op: op, Option: "confirm_file", Err: err}
	}
	m.log.Warn("power: a person must act", "driver", "manual", "op", op,
		"do", fmt.Sprintf(what, m.Name), "then", "touch "+m.ConfirmFile)
	t := time.NewTicker(m.Poll)
	defer t.Stop()
	for {
		if _, err := os.Stat(m.ConfirmFile); err == nil {
			os.Remove(m.ConfirmFile)
			m.mu.Lock()
			m.state = after
			m.mu.Unlock()
			return nil
		}
		select {
		case <-ctx.Done():
			return &Error{Driver: "manual", Op: op, Err: fmt.Errorf("no confirmation in %s: %w", m.ConfirmFile, ctx.Err())}
		case <-t.C:
		}
	}
}

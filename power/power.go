// Package power switches lent servers on and off through the lender's
// out-of-band interfaces: ipmitool (IPMI over LAN), Redfish (HTTP), QEMU's
// QMP socket (the lab) and a manual driver that asks a person.
package power

import (
	"context"
	"fmt"
)

// State is a machine's power state as a driver sees it.
type State string

const (
	StateOn      State = "on"
	StateOff     State = "off"
	StatePaused  State = "paused" // QEMU stopped (-S or "stop")
	StateUnknown State = "unknown"
)

// Driver switches one machine. Every method is bounded by ctx.
type Driver interface {
	On(ctx context.Context) error
	Off(ctx context.Context) error
	Reset(ctx context.Context) error
	Status(ctx context.Context) (State, error)
}

// Error names the driver, the operation and, where it applies, the option
// that was wrong.
type Error struct {
	Driver, Op, Option string
	Err                error
}

func (e *Error) Error() string {
	s := "power " + e.Driver
	if e.Op != "" {
		s += " " + e.Op
	}
	if e.Option != "" {
		s += fmt.Sprintf(" (option %q)", e.Option)
	}
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

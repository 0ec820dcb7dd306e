package vmlab

import (
	"context"
	"fmt"
	"log/slog"

	"ferry/power"
)

// QMPMachine is a QEMU guest as redfishlab's machine: ferry's QMP driver
// does the work. Off is the VCPUs stopped and the machine reset, so the
// next On starts from the firmware like a machine powered up.
type QMPMachine struct {
	Socket string
	Log    *slog.Logger
}

func (m QMPMachine) driver(off string) (power.Driver, error) {
	return power.New("qmp", map[string]string{"socket": m.Socket, "off": off}, m.Log)
}

// PowerState maps QMP's status: running is On, paused or shut down Off.
func (m QMPMachine) PowerState(ctx context.Context) (string, error) {
	d, err := m.driver("stop")
	if err != nil {
		return "", err
	}
	st, err := d.Status(ctx)
	switch {
	case err != nil:
		return "", err
	case st == power.StateOn:
		return "On", nil
	case st == power.StateOff || st == power.StatePaused:
		return "Off", nil
	}
	return "", fmt.Errorf("QMP status %s", st)
}

// Reset carries out one of redfishlab.ResetTypes.
func (m QMPMachine) Reset(ctx context.Context, typ string) error {
	stop, err := m.driver("stop")
	if err != nil {
		return err
	}
	switch typ {
	case "On":
		return stop.On(ctx)
	case "ForceOff":
		if err := stop.Off(ctx); err != nil {
			return err
		}
		return stop.Reset(ctx)
	case "GracefulShutdown":
		d, err := m.driver("powerdown")
		if err != nil {
			return err
		}
		return d.Off(ctx)
	case "ForceRestart", "PowerCycle":
		if err := stop.Off(ctx); err != nil {
			return err
		}
		if err := stop.Reset(ctx); err != nil {
			return err
		}
		return stop.On(ctx)
	}
	return fmt.Errorf("reset type %q", typ)
}

package power

import (
	"context"
	"fmt"
	"time"
)

// confirmWithin bounds how long a driver waits for the BMC to report the
// power state it was asked for: BMCs answer "done" before the chassis has
// switched, and a BMC that accepted a command and did nothing must not
// pass for one that worked.
const confirmWithin = 60 * time.Second

// confirm reads the power state back until it is want, or fails naming
// the last state seen. poll is the pause between reads.
func confirm(ctx context.Context, driver, op string, status func(context.Context) (State, error), want State, poll time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, confirmWithin)
	defer cancel()
	t0 := time.Now()
	var last State // the last state read, if any
	var lastErr error
	for {
		st, err := status(ctx)
		if err == nil && st == want {
			return nil
		}
		if err == nil {
			last = st
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if last == "" {
				return &Error{Driver: driver, Op: op, Err: fmt.Errorf("power state not read back as %s: %w", want, lastErr)}
			}
			return &Error{Driver: driver, Op: op, Err: fmt.Errorf("power state still %s, want %s, after %s", last, want, time.Since(t0).Round(time.Second))}
		case <-time.After(poll):
		}
	}
}

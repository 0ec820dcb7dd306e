package agent

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// console prints one line per phase, the timeline a person (and the lab's
// assertions) read on the serial console.
type console struct {
	w  io.Writer
	mu sync.Mutex // the disk watcher prints from its own goroutine
}

// phase runs fn as the named phase of the transfer and prints
// "ferry: phase NAME ok in DURATION" or "... failed: REASON".
func (c *console) phase(name string, fn func() error) error {
	start := time.Now()
	if err := fn(); err != nil {
		c.printf("ferry: phase %s failed: %s", name, oneLine(err.Error()))
		return fmt.Errorf("phase %s: %w", name, err)
	}
	c.printf("ferry: phase %s ok in %s", name, round(time.Since(start)))
	return nil
}

// done reports a phase that ended before ferry could time it (the kernel's
// own boot, measured by /proc/uptime).
func (c *console) done(name string, d time.Duration) {
	c.printf("ferry: phase %s ok in %s", name, round(d))
}

func (c *console) printf(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format+"\n", a...)
}

func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

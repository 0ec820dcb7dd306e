package vmlab

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// Console is a guest's serial output as QEMU writes it to a file.
type Console struct {
	Path string
}

// Text is the console so far without carriage returns and escape bytes
// (SeaBIOS and iPXE paint with them), so lines match plainly.
func (c *Console) Text() string {
	b, _ := os.ReadFile(c.Path)
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == 0x1b {
			return -1
		}
		return r
	}, string(b))
}

// Expect waits until re matches the console text and returns the first
// match and its groups. It fails after timeout, naming the wait and
// quoting the console's tail; it stops early if quit is closed (the
// guest's QEMU exited).
func (c *Console) Expect(re *regexp.Regexp, timeout time.Duration, quit <-chan struct{}) ([]string, error) {
	end := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(c.Text()); m != nil {
			return m, nil
		}
		if time.Now().After(end) {
			return nil, fmt.Errorf("console: no %q within %s; tail:\n%s", re, timeout, c.Tail(1500))
		}
		select {
		case <-quit:
			if m := re.FindStringSubmatch(c.Text()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("console: QEMU exited before %q; tail:\n%s", re, c.Tail(1500))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// All returns every match of re in the console so far.
func (c *Console) All(re *regexp.Regexp) [][]string {
	return re.FindAllStringSubmatch(c.Text(), -1)
}

// Tail is the console's last n bytes.
func (c *Console) Tail(n int) string { return tail(c.Text(), n) }

// reKernelTrouble matches what the kernel prints for a warning, an oops or
// a bug, with the line it starts on: a lab run fails on any of them.
var reKernelTrouble = regexp.MustCompile(`(?m)^.*(WARNING: |Oops|BUG: |Call Trace:|Kernel panic).*$`)

// KernelTrouble lists the console lines that report a kernel warning, oops,
// bug or panic (each with the line that starts it).
func (c *Console) KernelTrouble() []string {
	var out []string
	for _, m := range reKernelTrouble.FindAllString(c.Text(), -1) {
		out = append(out, strings.TrimSpace(m))
	}
	return out
}

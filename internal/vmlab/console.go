package vmlab

import (
	"context"
	"fmt"
	"io"
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
	return clean(string(b))
}

func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == 0x1b {
			return -1
		}
		return r
	}, s)
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

// Tail is the console's last n bytes, after the start of a Go crash
// when one is earlier on the console: ferry dying as PID 1 is followed
// by the kernel's panic and its register dump, which fill a plain tail.
func (c *Console) Tail(n int) string { return crashAndTail(c.Text(), n) }

// reGoCrash matches the first line Go's runtime prints when a program
// dies of a panic or a fatal error (a data race on a map, say).
var reGoCrash = regexp.MustCompile(`(?m)^(panic: |fatal error: ).*$`)

// crashMax bounds the crash's excerpt: its first lines and the goroutine
// that crashed.
const crashMax = 2000

func crashAndTail(text string, n int) string {
	t := tail(text, n)
	loc := reGoCrash.FindStringIndex(text)
	if loc == nil || loc[0] >= len(text)-len(t) {
		return t
	}
	crash := text[loc[0]:min(len(text), loc[0]+crashMax, len(text)-len(t))]
	return "--- a Go program crashed on the console:\n" + crash + "\n--- ...\n" + t
}

// reKernelTrouble matches what the kernel prints for a warning, an oops or
// a bug, with the line it starts on: a lab run fails on any of them.
var reKernelTrouble = regexp.MustCompile(`(?m)^.*(WARNING: |Oops|BUG: |Call Trace:|Kernel panic).*$`)

// KernelTrouble lists the console lines that report a kernel warning, oops,
// bug or panic (each with the line that starts it).
func (c *Console) KernelTrouble() []string { return kernelTrouble(c.Text()) }

func kernelTrouble(text string) []string {
	var out []string
	for _, m := range reKernelTrouble.FindAllString(text, -1) {
		out = append(out, strings.TrimSpace(m))
	}
	return out
}

// Follow calls line with each console line as it appears, and the host
// time since start, until ctx ends: the lab's event log, and the stream a
// person watches (FERRY_STREAM).
func (c *Console) Follow(ctx context.Context, start time.Time, line func(since time.Duration, l string)) {
	var off int
	var part string
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true // one last read: what came before the end
		case <-time.After(200 * time.Millisecond):
		}
		b, _ := os.ReadFile(c.Path)
		if len(b) > off {
			lines := strings.Split(part+string(b[off:]), "\n")
			off = len(b)
			part = lines[len(lines)-1]
			for _, l := range lines[:len(lines)-1] {
				line(time.Since(start), clean(l))
			}
		}
	}
}

// Stream prints each line to w stamped with the host time (Follow's
// callback for a person watching).
func Stream(w io.Writer) func(time.Duration, string) {
	return func(since time.Duration, l string) { fmt.Fprintf(w, "[host %6.1fs] %s\n", since.Seconds(), l) }
}

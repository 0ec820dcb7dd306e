package agent

import (
	"fmt"
	"strings"
)

// Cmdline is the kernel command line split into parameters. Later
// occurrences of a key win, as they do for the kernel's own __setup params.
type Cmdline struct {
	params map[string]string
}

// ParseCmdline splits a kernel command line. Double quotes group a value
// containing spaces (`key="a b"`), as the kernel's next_arg() does.
func ParseCmdline(s string) (*Cmdline, error) {
	if len(s) > 64<<10 {
		return nil, fmt.Errorf("kernel command line: %d bytes is more than any kernel accepts", len(s))
	}
	c := &Cmdline{params: map[string]string{}}
	for _, f := range splitQuoted(strings.TrimSpace(s)) {
		k, v, _ := strings.Cut(f, "=")
		c.params[k] = v
	}
	return c, nil
}

// Get returns the value of key and whether it was present.
func (c *Cmdline) Get(key string) (string, bool) {
	v, ok := c.params[key]
	return v, ok
}

func splitQuoted(s string) []string {
	var out []string
	var b strings.Builder
	inQuote := false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
		case (r == ' ' || r == '\t' || r == '\n') && !inQuote:
			if b.Len() > 0 {
				out = append(out, b.String())
				b.Reset()
			}
		default:
			b.WriteRune(r)
		}
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

// bCmdline is image B's command line: the borrower's own, then the
// parameters that make B's kernel run ferry from the appended segment. They
// go last because the last occurrence wins.
func bCmdline(borrower, trace string) string {
	extra := "rdinit=" + InitPath + " ferry.trace=" + trace
	if strings.TrimSpace(borrower) == "" {
		return extra
	}
	return strings.TrimSpace(borrower) + " " + extra
}

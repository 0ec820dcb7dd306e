package vmlab

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// QuickStep is one command of the README's real-site quick start: the
// host it runs on (the last "# lender host" or "# borrower host" line
// above it) and its words.
type QuickStep struct {
	Host string
	Argv []string
}

func (s QuickStep) String() string { return s.Host + ": " + strings.Join(s.Argv, " ") }

// Verb is the command without its options and arguments, e.g. "ferry
// lender server add": the words before the first one starting with "-"
// or holding a path, an address or a placeholder.
func (s QuickStep) Verb() string {
	var v []string
	for _, w := range s.Argv {
		if strings.HasPrefix(w, "-") || strings.ContainsAny(w, "/.:") || strings.ToUpper(w) == w {
			break
		}
		v = append(v, w)
	}
	return strings.Join(v, " ")
}

// QuickStart reads the first code block under "## Real site quick start"
// of the README: continuation lines joined, comments dropped, `a && b`
// split into two steps. Nothing fancier: the block is plain words.
func QuickStart(readme string) ([]QuickStep, error) {
	f, err := os.Open(readme)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var steps []QuickStep
	var host, pending string
	section, block := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			if section && len(steps) > 0 {
				return steps, nil
			}
			section = line == "## Real site quick start"
			continue
		case !section:
			continue
		case strings.HasPrefix(line, "```"):
			if block {
				return steps, nil
			}
			block = true
			continue
		case !block:
			continue
		}
		if h, ok := strings.CutPrefix(strings.TrimSpace(line), "# "); ok && strings.HasSuffix(h, " host") {
			host = strings.TrimSuffix(h, " host")
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		line = strings.TrimSpace(line)
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending += cont + " "
			continue
		}
		line, pending = pending+line, ""
		if line == "" {
			continue
		}
		if host == "" {
			return nil, fmt.Errorf("%s: %q comes before any \"# NAME host\" line", readme, line)
		}
		for _, part := range strings.Split(line, "&&") {
			steps = append(steps, QuickStep{Host: host, Argv: strings.Fields(part)})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("%s: no code block under \"## Real site quick start\"", readme)
	}
	return steps, nil
}

// ExecStart is a systemd unit's ExecStart= command line, split into
// words (ferry's units quote nothing).
func ExecStart(unit string) ([]string, error) {
	b, err := os.ReadFile(unit)
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "ExecStart="); ok {
			return strings.Fields(v), nil
		}
	}
	return nil, fmt.Errorf("%s: no ExecStart=", unit)
}

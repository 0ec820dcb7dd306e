package applets

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// logOptions are --log-level and --log-format, which every applet
// accepts (before or after its subcommand): Main takes them out of the
// arguments and builds the applet's logger from them.
type logOptions struct {
	level  slog.Level
	format string // text or json
	given  bool   // either was on the command line
}

// takeLogOptions removes --log-level and --log-format (as "--opt V" or
// "--opt=V", one or two dashes) from args, up to a lone "--".
func takeLogOptions(args []string) ([]string, logOptions, error) {
	o := logOptions{level: slog.LevelInfo, format: "text"}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(rest, args[i:]...), o, nil
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || (name != "log-level" && name != "log-format") {
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, o, usagef("--%s needs a value", name)
			}
			i++
			val = args[i]
		}
		o.given = true
		switch name {
		case "log-level":
			if err := o.level.UnmarshalText([]byte(val)); err != nil {
				return nil, o, usagef("--log-level %q: want debug, info, warn or error", val)
			}
		case "log-format":
			if val != "text" && val != "json" {
				return nil, o, usagef("--log-format %q: want text or json", val)
			}
			o.format = val
		}
	}
	return rest, o, nil
}

// newLogger writes records to w as o says. Under journald (journal true)
// the time is left out, journald stamps each line itself, and each line
// starts with its syslog priority (<3> error ... <7> debug) so that
// `journalctl -p warning` selects by level.
func newLogger(w io.Writer, o logOptions, journal bool) *slog.Logger {
	ho := &slog.HandlerOptions{Level: o.level}
	if journal {
		ho.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
		w = priorityWriter{w}
	}
	if o.format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// priorityWriter prefixes each record (slog's handlers write one record
// per Write, starting with its level once the time is left out) with the
// sd-daemon(3) priority of its level.
type priorityWriter struct{ w io.Writer }

func (p priorityWriter) Write(b []byte) (int, error) {
	prio := 6 // info
	for lvl, pr := range map[string]int{"DEBUG": 7, "WARN": 4, "ERROR": 3} {
		if bytes.HasPrefix(b, []byte("level="+lvl)) || bytes.HasPrefix(b, []byte(`{"level":"`+lvl)) {
			prio = pr
		}
	}
	if _, err := fmt.Fprintf(p.w, "<%d>%s", prio, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// applyLogOptions takes the log options out of args and, when one was
// given or stderr is the journal, replaces env.Log to match.
func applyLogOptions(env *Env, args []string) ([]string, error) {
	rest, o, err := takeLogOptions(args)
	if err != nil {
		return nil, err
	}
	f, _ := env.Stderr.(*os.File)
	if journal := underJournal(os.Getenv, f); o.given || journal {
		env.Log = newLogger(env.Stderr, o, journal)
	}
	return rest, nil
}

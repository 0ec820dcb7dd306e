// Package configfile reads ferry's JSON configuration files strictly and
// reports every problem of a file at once: an operator who misspells two
// keys and gives a bad address learns all three from one run, each with
// its field path, the value given and what is wanted, instead of fixing
// them one restart at a time.
//
// Strict means: a key the configuration does not have is refused (a typo
// must not leave a setting at its default), a key given twice is refused
// (JSON keeps the last silently), and a value of the wrong type is
// refused. The one exception is the key "//", which may appear in any
// object with a string or a list of strings as its value: JSON has no
// comments, and `ferry lender init` writes its explanations there so that
// they travel with the file.
package configfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// CommentKey is the key ignored in every object.
const CommentKey = "//"

// Problem is one thing wrong (or worth a warning) in a configuration.
type Problem struct {
	Field   string // JSON path: "netboot.kernel_a", "borrowers[1].ca"; "" for the file as a whole
	Value   string // what was given, as the operator wrote it (bounded)
	Want    string // what is wanted, or what is wrong
	Warning bool   // true: worth knowing, not a reason to refuse
	// Info: how things stand, nothing wrong: what appears only once
	// the services run (a CRL, a socket) on a site set up a moment ago.
	Info bool
}

// IsError says whether p refuses the file.
func (p Problem) IsError() bool { return !p.Warning && !p.Info }

func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.Info:
		b.WriteString("info: ")
	case p.Warning:
		b.WriteString("warning: ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		if p.Value != "" {
			b.WriteString(" ")
			b.WriteString(p.Value)
		}
		b.WriteString(": ")
	} else if p.Value != "" {
		b.WriteString(p.Value + ": ")
	}
	b.WriteString(p.Want)
	return b.String()
}

// Report collects the problems of one file.
type Report struct {
	Name     string // what is being read, e.g. "lender config /etc/ferry/lender.json"
	Problems []Problem
}

// Raw is a Value shown as it is, not quoted: JSON as the file had it.
type Raw string

// Value formats v as a Problem's Value: strings quoted and cut at 200
// bytes, the rest as %v.
func Value(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%.200q", x)
	case Raw:
		return string(x)
	case nil:
		return ""
	}
	return fmt.Sprintf("%v", v)
}

// Errorf records a problem that refuses the file.
func (r *Report) Errorf(field string, value any, format string, a ...any) {
	r.Problems = append(r.Problems, Problem{Field: field, Value: Value(value), Want: fmt.Sprintf(format, a...)})
}

// Warnf records a problem worth a warning.
func (r *Report) Warnf(field string, value any, format string, a ...any) {
	r.Problems = append(r.Problems, Problem{Field: field, Value: Value(value), Want: fmt.Sprintf(format, a...), Warning: true})
}

// Infof records how something stands that is not a problem yet, as on
// a fresh site before its services run.
func (r *Report) Infof(field string, value any, format string, a ...any) {
	r.Problems = append(r.Problems, Problem{Field: field, Value: Value(value), Want: fmt.Sprintf(format, a...), Info: true})
}

// Add records err against field, unless err is nil.
func (r *Report) Add(field string, err error) {
	if err != nil {
		r.Problems = append(r.Problems, Problem{Field: field, Want: err.Error()})
	}
}

// Required records an error for each field of fields whose value is empty.
func (r *Report) Required(fields map[string]string) {
	for _, k := range sortedKeys(fields) {
		if fields[k] == "" {
			r.Errorf(k, nil, "missing or empty: required")
		}
	}
}

// Failed reports whether any problem is an error.
func (r *Report) Failed() bool {
	for _, p := range r.Problems {
		if p.IsError() {
			return true
		}
	}
	return false
}

// Warnings are the problems that do not refuse the file.
func (r *Report) Warnings() []Problem {
	var out []Problem
	for _, p := range r.Problems {
		if p.Warning && !p.Info {
			out = append(out, p)
		}
	}
	return out
}

// Infos are the notes of Infof.
func (r *Report) Infos() []Problem {
	var out []Problem
	for _, p := range r.Problems {
		if p.Info {
			out = append(out, p)
		}
	}
	return out
}

// Err is nil when no problem is an error, else an *Error with every error.
func (r *Report) Err() error {
	e := &Error{Name: r.Name}
	for _, p := range r.Problems {
		if p.IsError() {
			e.Problems = append(e.Problems, p)
		}
	}
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// Error is a refused configuration: every error found, each on its own
// line of Error().
type Error struct {
	Name     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Name)
	if len(e.Problems) == 1 {
		b.WriteString(": " + e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, ": %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// Problems returns the problems of err when it is (or wraps) an *Error.
func Problems(err error) []Problem {
	var e *Error
	if errors.As(err, &e) {
		return e.Problems
	}
	return nil
}

// Load reads path (at most max bytes) and decodes it strictly into v,
// recording every problem in a new Report named name+" "+path. A file that
// cannot be read is returned as an error; everything else is in the
// Report.
func Load(name, path string, max int64, v any) (*Report, error) {
	r := &Report{Name: name + " " + path}
	f, err := os.Open(path)
	if err != nil {
		return r, fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return r, fmt.Errorf("%s: %w", r.Name, err)
	}
	if int64(len(data)) > max {
		return r, fmt.Errorf("%s: over %d bytes", r.Name, max)
	}
	Decode(r, data, v)
	return r, nil
}

package applets

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"reflect"
	"strings"
	"text/tabwriter"

	"ferry/api"
)

// output is a list's or a show's format: -o table|wide|json and
// --no-headers, the same on every command that prints records.
type output struct {
	format    string
	noHeaders bool
}

func outputFlags(fs *flag.FlagSet) *output {
	o := &output{}
	fs.StringVar(&o.format, "o", "table", "output format: table, wide (more columns) or json (for scripts)")
	fs.BoolVar(&o.noHeaders, "no-headers", false, "print tables without their header line")
	return o
}

func (o *output) check() error {
	switch o.format {
	case "table", "wide", "json":
		return nil
	}
	return usagef("-o %q: want table, wide or json", o.format)
}

// connect opens a command over a manager's admin socket: the socket,
// then -o, the order of checks every such command keeps.
func (o *output) connect(admin func() (*api.Client, error)) (*api.Client, error) {
	c, err := admin()
	if err != nil {
		return nil, err
	}
	return c, o.check()
}

// json prints v as indented JSON when -o json was asked; it says whether
// it did.
func (o *output) json(env *Env, v any) (bool, error) {
	if o.format != "json" {
		return false, nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.IsNil() {
		v = []any{} // an empty list is [], never null, for scripts
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return true, enc.Encode(v)
}

// column is one column of a table; wide ones show with -o wide only.
type column struct {
	name string
	wide bool
}

// table prints rows under cols (cells of wide columns included in each
// row), dropping the wide columns unless -o wide, "-" for empty cells.
func (o *output) table(env *Env, cols []column, rows [][]string) error {
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	pick := func(cells []string) string {
		var out []string
		for i, c := range cols {
			if c.wide && o.format != "wide" {
				continue
			}
			v := ""
			if i < len(cells) {
				v = cells[i]
			}
			if v == "" {
				v = "-"
			}
			out = append(out, strings.ReplaceAll(v, "\t", " "))
		}
		return strings.Join(out, "\t")
	}
	if !o.noHeaders {
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = c.name
		}
		fmt.Fprintln(tw, pick(names))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, pick(r))
	}
	return tw.Flush()
}

// adminList is a list command over a manager's admin socket: GET path
// into a []T, printed as -o json or as rows(items) under cols. The order
// of its checks (socket, then -o) is every list command's.
func adminList[T any](env *Env, fs *flag.FlagSet, admin func() (*api.Client, error), path string,
	cols []column, rows func([]T) [][]string) func(context.Context, []string) error {
	o := outputFlags(fs)
	return func(ctx context.Context, pos []string) error {
		c, err := o.connect(admin)
		if err != nil {
			return err
		}
		items := []T{}
		if err := c.Call(ctx, "GET", path, nil, &items); err != nil {
			return err
		}
		if ok, err := o.json(env, items); ok {
			return err
		}
		return o.table(env, cols, rows(items))
	}
}

// adminOne is a command on one thing over a manager's admin socket (show,
// events, remove, clear): one argument (what: "MAC", "lease ID"), sent
// with do, its answer printed as -o json or by print. The order of its
// checks (socket, argument, then -o) is every such command's.
func adminOne[T any](env *Env, fs *flag.FlagSet, admin func() (*api.Client, error), what string,
	do func(ctx context.Context, c *api.Client, arg string) (T, error), print func(o *output, v T) error) func(context.Context, []string) error {
	o := outputFlags(fs)
	return func(ctx context.Context, pos []string) error {
		c, err := admin()
		if err != nil {
			return err
		}
		arg, err := oneArg(pos, what)
		if err != nil {
			return err
		}
		if err := o.check(); err != nil {
			return err
		}
		v, err := do(ctx, c, arg)
		if err != nil {
			return err
		}
		if ok, err := o.json(env, v); ok {
			return err
		}
		return print(o, v)
	}
}

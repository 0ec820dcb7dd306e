package applets

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Command is one node of an applet's command tree (`lender server
// power`). The tree is the one definition the dispatcher, `--help`, shell
// completion (`ferry completion`) and the man pages (`ferry man`) all read,
// so none of them can drift from what the commands accept.
//
// Flags stay Go's flag package: Setup declares a leaf's flags on the
// FlagSet it is given and returns the function that runs with them, so a
// FlagSet made only to list the flags runs nothing.
type Command struct {
	Name    string
	Summary string
	// Args is the synopsis of the positional arguments ("MAC", "ID").
	Args string
	// Complete names what each positional is, for shell completion:
	// "file", "dir", or a list of the words allowed ("on off status").
	Complete []string
	// Help is printed after the flags by --help and in the man page.
	Help  string
	Setup func(env *Env, fs *flag.FlagSet) func(ctx context.Context, pos []string) error
	// Raw, instead of Setup, is a leaf that parses its own arguments
	// (its flags are then not known to completion and man).
	Raw func(ctx context.Context, env *Env, args []string) error
	Sub []Command
}

// find is the subcommand called name.
func (c Command) find(name string) (Command, bool) {
	for _, s := range c.Sub {
		if s.Name == name {
			return s, true
		}
	}
	return Command{}, false
}

// runTree dispatches args below c, whose path (e.g. "lender server") is
// how errors and usage name it.
func runTree(ctx context.Context, env *Env, path string, c Command, args []string) error {
	if len(c.Sub) > 0 {
		if len(args) == 0 || isHelp(args[0]) {
			printSubs(env.Stdout, path, c)
			if len(args) == 0 {
				return usagef("%s: missing subcommand", path)
			}
			return nil
		}
		sub, ok := c.find(args[0])
		if !ok {
			return usagef("%s: unknown subcommand %q (want %s)", path, args[0], subNames(c))
		}
		return runTree(ctx, env, path+" "+sub.Name, sub, args[1:])
	}
	if c.Raw != nil {
		return c.Raw(ctx, env, args)
	}
	fs := newFlags(env, path, strings.TrimSpace(path+" [flags] "+c.Args))
	run := c.Setup(env, fs)
	usage := fs.Usage
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "%s: %s\n", path, c.Summary)
		usage()
		if c.Help != "" {
			fmt.Fprintln(env.Stderr, "\n"+c.Help)
		}
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	return run(ctx, pos)
}

func isHelp(s string) bool { return s == "--help" || s == "-h" || s == "help" }

func subNames(c Command) string {
	var n []string
	for _, s := range c.Sub {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}

// printSubs lists the subcommands of c, recursively, one line each.
func printSubs(w io.Writer, path string, c Command) {
	fmt.Fprintf(w, "%s: %s\n\nsubcommands:\n", path, c.Summary)
	walkLeaves(path, c, func(p string, l Command) {
		fmt.Fprintf(w, "  %-40s %s\n", strings.TrimSpace(strings.TrimPrefix(p, path)+" "+l.Args), l.Summary)
	})
	fmt.Fprintf(w, "\nRun '%s SUBCOMMAND --help' for its flags.\n", path)
	if c.Help != "" {
		fmt.Fprintln(w, "\n"+c.Help)
	}
	if c.Help != "" {
		fmt.Fprintln(w, "\n"+c.Help)
	}
}

// walkLeaves calls fn for every leaf below c with its full path.
func walkLeaves(path string, c Command, fn func(path string, leaf Command)) {
	if len(c.Sub) == 0 {
		fn(path, c)
		return
	}
	for _, s := range c.Sub {
		walkLeaves(path+" "+s.Name, s, fn)
	}
}

// flagsOf declares c's flags on a throwaway FlagSet, for completion and
// the man pages.
func flagsOf(c Command) []*flag.Flag {
	if c.Setup == nil {
		return nil
	}
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Setup(&Env{Stdout: io.Discard, Stderr: io.Discard, Stdin: strings.NewReader("")}, fs)
	var out []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { out = append(out, f) })
	return out
}

// treeApplet makes an applet of a command tree.
func treeApplet(c Command) Applet {
	return Applet{Name: c.Name, Summary: c.Summary, Tree: &c,
		Run: func(ctx context.Context, env *Env, args []string) error { return runTree(ctx, env, c.Name, c, args) }}
}

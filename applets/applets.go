// Package applets holds ferry's commands. Each applet is thin: it parses its
// flags and calls the packages that do the work. Main dispatches by the
// basename of argv[0], else by the first argument.
package applets

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"ferry/buildinfo"
)

// Env is what an applet may touch of the process: its standard streams and
// logger. Passing it explicitly keeps applets testable without globals.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Log    *slog.Logger
	// Getenv reads the environment (os.Getenv when nil): the default
	// directories and configuration files can be moved by variables.
	Getenv func(string) string
}

func (e *Env) getenv(k string) string {
	if e.Getenv != nil {
		return e.Getenv(k)
	}
	return os.Getenv(k)
}

// StdEnv is the environment of a normal process.
func StdEnv() *Env {
	return &Env{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Log:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// Applet is one command of the multicall binary.
type Applet struct {
	Name    string
	Summary string
	// Run gets the arguments after the applet name. It returns a UsageError
	// for bad invocations (exit 2) and any other error for failures (exit 1).
	Run func(ctx context.Context, env *Env, args []string) error
	// Tree, when set, is the applet's command tree (Run dispatches it):
	// completion and man pages read its subcommands and flags.
	Tree *Command
	// RawArgs: the arguments are another program's (systemd-shutdown's
	// flags to /shutdown); no --log-level or --log-format is taken out.
	RawArgs bool
}

// UsageError marks a bad invocation: main prints it with a hint and exits 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Exit codes every applet shares (documented in `ferry --help`).
const (
	ExitOK       = 0 // done
	ExitFailed   = 1 // failed
	ExitUsage    = 2 // bad invocation
	ExitRetrying = 3 // accepted and still being retried (lease request)
)

// ExitError ends the applet with Code; Err, when set, is printed first.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

func usagef(format string, a ...any) error { return &UsageError{Msg: fmt.Sprintf(format, a...)} }

// All lists the applets in the order `ferry --help` shows them.
func All() []Applet {
	return []Applet{
		initApplet(),
		initrdApplet(),
		kexecApplet(),
		switchRootApplet(),
		shutdownApplet(),
		keeperApplet(),
		keygenApplet(),
		pkiApplet(),
		lenderApplet(),
		borrowerApplet(),
		vpnApplet(),
		gatewayApplet(),
	}
}

// Lookup finds an applet by name. A leading '@' is ignored: long-lived
// processes that must survive switch_root name themselves "@keeper" so that
// systemd spares them at shutdown.
func Lookup(name string) (Applet, bool) {
	name = strings.TrimPrefix(name, "@")
	for _, a := range All() {
		if a.Name == name {
			return a, true
		}
	}
	return Applet{}, false
}

// Main runs the applet named by argv and returns the process exit code.
func Main(ctx context.Context, env *Env, argv []string) int {
	if len(argv) == 0 {
		argv = []string{"ferry"}
	}
	name := filepath.Base(argv[0])
	args := argv[1:]
	a, ok := Lookup(name)
	if !ok {
		if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
			printHelp(env.Stdout)
			return 0
		}
		if args[0] == "--version" {
			fmt.Fprintln(env.Stdout, buildinfo.Read())
			return 0
		}
		name, args = args[0], args[1:]
		if code, ok := builtin(ctx, env, name, args); ok {
			return code
		}
		if a, ok = Lookup(name); !ok {
			fmt.Fprintf(env.Stderr, "ferry: unknown applet %q\n", name)
			printHelp(env.Stderr)
			return 2
		}
	}
	if len(args) > 0 && args[0] == "--version" {
		// Every applet, by name or through its link: `lender --version`.
		fmt.Fprintln(env.Stdout, buildinfo.Read())
		return 0
	}
	var err error
	if !a.RawArgs {
		args, err = applyLogOptions(env, args)
	}
	if err == nil {
		err = a.Run(ctx, env, args)
	}
	return exitCode(env, a.Name, err)
}

// exitCode prints err as the applet's failure and says the exit status:
// 0 done, 1 failed, 2 usage, or an ExitError's own.
func exitCode(env *Env, name string, err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(env.Stderr, "%s: %v\n", name, ee.Err)
		}
		return ee.Code
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(env.Stderr, "%s: %v (see '%s --help')\n", name, err, name)
		return ExitUsage
	}
	fmt.Fprintf(env.Stderr, "%s: %v\n", name, err)
	return ExitFailed
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "ferry: lend a bare-metal server without touching its disk")
	fmt.Fprintln(w, "\nusage: ferry APPLET [ARGS...]   or   APPLET [ARGS...] through a symlink")
	fmt.Fprintln(w, "\napplets:")
	for _, a := range All() {
		fmt.Fprintf(w, "  %-12s %s\n", a.Name, a.Summary)
	}
	fmt.Fprintln(w, "\nevery applet also takes --version, --log-level debug|info|warn|error and --log-format text|json")
	fmt.Fprintln(w, "(under journald, lines carry no time and start with their syslog priority)")
	fmt.Fprintln(w, "\nRun 'ferry APPLET --help' for an applet's options.")
	fmt.Fprintln(w, "Also: ferry completion bash|zsh|fish (a shell's completion script),")
	fmt.Fprintln(w, "ferry man DIR (writes the man pages).")
	fmt.Fprintln(w, "\nexit status: 0 done, 1 failed, 2 usage error, 3 accepted and still")
	fmt.Fprintln(w, "being retried (borrower lease request: the manager retries it).")
}

// newFlags makes a FlagSet that reports errors instead of exiting and prints
// its usage to the applet's stderr.
func newFlags(env *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{Msg: err.Error()}
	}
	return nil
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments (`patch IN -o OUT`), as operators expect of
// kexec-tools and cpio-style commands, and returns the positionals. A lone
// "--" ends flag parsing.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

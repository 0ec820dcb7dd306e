package applets

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Built-in commands of the multicall binary itself (`ferry completion`,
// `ferry man`): they are not applets, so `make links` makes no symlink
// named "man" or "completion".
const (
	cmdCompletion = "completion"
	cmdMan        = "man"
	cmdComplete   = "__complete" // what the completion scripts call
)

// filesHint tells a completion script to complete file names.
const filesHint = "__files__"

// builtin runs a built-in command; ok is false when name is not one.
func builtin(ctx context.Context, env *Env, name string, args []string) (code int, ok bool) {
	var err error
	switch name {
	case cmdCompletion:
		err = runCompletion(env, args)
	case cmdMan:
		err = runMan(ctx, env, args)
	case cmdComplete:
		for _, c := range complete(args) {
			fmt.Fprintln(env.Stdout, c)
		}
	default:
		return 0, false
	}
	return exitCode(env, "ferry "+name, err), true
}

func runCompletion(env *Env, args []string) error {
	if len(args) != 1 {
		return usagef("usage: ferry completion bash|zsh|fish")
	}
	s, ok := map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}[args[0]]
	if !ok {
		return usagef("completion: %q: want bash, zsh or fish", args[0])
	}
	_, err := io.WriteString(env.Stdout, s)
	return err
}

// The scripts ask the binary (`ferry __complete WORDS...`), which walks
// the same command tree the dispatcher runs: they never go stale.
const bashCompletion = `# bash completion for ferry (ferry completion bash)
_ferry() {
	local cur=${COMP_WORDS[COMP_CWORD]} IFS=$'\n'
	local -a out
	out=($(ferry __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
	if [[ ${out[0]} == __files__ ]]; then
		COMPREPLY=($(compgen -f -- "$cur"))
		return
	fi
	COMPREPLY=($(compgen -W "${out[*]}" -- "$cur"))
}
complete -o filenames -F _ferry ferry
`

const zshCompletion = `#compdef ferry
# zsh completion for ferry (ferry completion zsh)
_ferry() {
	local -a out
	out=("${(@f)$(ferry __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	if [[ $out[1] == __files__ ]]; then
		_files
		return
	fi
	compadd -- "${out[@]}"
}
if [[ $funcstack[1] == _ferry ]]; then
	_ferry "$@"
else
	compdef _ferry ferry
fi
`

const fishCompletion = `# fish completion for ferry (ferry completion fish)
function __ferry_complete
	set -l words (commandline -opc) (commandline -ct)
	set -e words[1]
	set -l out (ferry __complete $words 2>/dev/null)
	if test "$out[1]" = __files__
		__fish_complete_path (commandline -ct)
		return
	end
	printf '%s\n' $out
end
complete -c ferry -f -a '(__ferry_complete)'
`

// complete answers `ferry __complete WORD... CUR`: the candidates for
// CUR, the last word (the shell filters them by its prefix).
func complete(words []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	prev, cur := words[:len(words)-1], words[len(words)-1]
	if len(prev) == 0 {
		out := []string{cmdCompletion, cmdMan}
		for _, a := range All() {
			out = append(out, a.Name)
		}
		return out
	}
	switch prev[0] {
	case cmdCompletion:
		return []string{"bash", "zsh", "fish"}
	case cmdMan:
		return []string{filesHint}
	}
	a, ok := Lookup(prev[0])
	if !ok || a.Tree == nil {
		return []string{filesHint}
	}
	c := *a.Tree
	var flags []*flag.Flag
	npos := 0
	for i := 1; i < len(prev); i++ {
		w := prev[i]
		if strings.HasPrefix(w, "-") {
			if f := lookupFlag(flags, w); f != nil && !isBool(f) && !strings.Contains(w, "=") {
				i++ // its value
			}
			continue
		}
		if sub, ok := c.find(w); ok && len(c.Sub) > 0 {
			c = sub
			flags = flagsOf(c)
			continue
		}
		npos++
	}
	if len(c.Sub) > 0 {
		var out []string
		for _, s := range c.Sub {
			out = append(out, s.Name)
		}
		return out
	}
	if len(prev) > 1 {
		if f := lookupFlag(flags, prev[len(prev)-1]); f != nil && !isBool(f) && !strings.Contains(prev[len(prev)-1], "=") {
			return []string{filesHint} // a flag's value: most are paths
		}
	}
	if !strings.HasPrefix(cur, "-") && npos < len(c.Complete) && c.Complete[npos] != "" {
		if c.Complete[npos] == "file" {
			return []string{filesHint}
		}
		return strings.Fields(c.Complete[npos])
	}
	var out []string
	for _, f := range flags {
		out = append(out, dashes(f.Name)+f.Name)
	}
	if len(out) == 0 {
		return []string{filesHint}
	}
	return out
}

// dashes is how a flag is written: -o, --dir.
func dashes(name string) string {
	if len(name) == 1 {
		return "-"
	}
	return "--"
}

func lookupFlag(flags []*flag.Flag, w string) *flag.Flag {
	name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
	for _, f := range flags {
		if f.Name == name {
			return f
		}
	}
	return nil
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// runMan writes ferry.1 and one ferry-APPLET.1 per applet into DIR.
func runMan(ctx context.Context, env *Env, args []string) error {
	if len(args) != 1 || isHelp(args[0]) {
		return usagef("usage: ferry man DIR (writes ferry.1 and ferry-APPLET.1 there)")
	}
	dir := args[0]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pages := map[string]string{"ferry.1": manFerry()}
	for _, a := range All() {
		pages["ferry-"+a.Name+".1"] = manApplet(ctx, a)
	}
	for name, text := range pages {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("man page %s: %w", name, err)
		}
	}
	fmt.Fprintf(env.Stdout, "%d man pages in %s\n", len(pages), dir)
	return nil
}

// roff escapes text for a man page line by line.
func roff(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		l = strings.ReplaceAll(l, `\`, `\e`)
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			l = `\&` + l
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

func manHeader(b *strings.Builder, name, summary string) {
	fmt.Fprintf(b, ".TH %s 1 \"\" \"ferry\" \"ferry manual\"\n.SH NAME\n%s \\- %s\n", strings.ToUpper(name), name, roff(summary))
}

func manFerry() string {
	var b strings.Builder
	manHeader(&b, "ferry", "lend a bare-metal server to another organisation without touching its disk")
	b.WriteString(".SH SYNOPSIS\n.B ferry\n.I APPLET\n.RI [ ARGS ...]\n.br\n.I APPLET\n.RI [ ARGS ...]\n(through a symlink)\n")
	b.WriteString(".br\n.B ferry completion\nbash|zsh|fish\n.br\n.B ferry man\n.I DIR\n")
	var help bytes.Buffer
	printHelp(&help)
	b.WriteString(".SH DESCRIPTION\n.nf\n" + roff(help.String()) + ".fi\n")
	b.WriteString(".SH SEE ALSO\n")
	var see []string
	for _, a := range All() {
		see = append(see, ".BR ferry-"+a.Name+" (1)")
	}
	b.WriteString(strings.Join(see, ",\n") + "\n")
	return b.String()
}

// manApplet is an applet's page: a command tree's every subcommand with
// its flags, or, for the applets that parse their own arguments, their
// --help text.
func manApplet(ctx context.Context, a Applet) string {
	var b strings.Builder
	manHeader(&b, "ferry-"+a.Name, a.Summary)
	fmt.Fprintf(&b, ".SH SYNOPSIS\n.B ferry %s\n.RI [ ARGS ...]\n", a.Name)
	if a.Tree == nil {
		var out bytes.Buffer
		a.Run(ctx, &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}, []string{"--help"})
		b.WriteString(".SH DESCRIPTION\n.nf\n" + roff(out.String()) + ".fi\n")
	} else {
		if a.Tree.Help != "" {
			b.WriteString(".SH DESCRIPTION\n.nf\n" + roff(a.Tree.Help) + ".fi\n")
		}
		b.WriteString(".SH COMMANDS\n")
		walkLeaves("ferry "+a.Name, *a.Tree, func(path string, c Command) {
			title := strings.TrimSuffix(roff(strings.TrimSpace(path+" "+c.Args)), "\n")
			fmt.Fprintf(&b, ".SS \"%s\"\n%s", strings.ReplaceAll(title, `"`, `\(dq`), roff(c.Summary))
			for _, f := range flagsOf(c) {
				name, usage := flag.UnquoteUsage(f)
				flagName := strings.ReplaceAll(dashes(f.Name), "-", `\-`) + f.Name
				if name != "" {
					fmt.Fprintf(&b, ".TP\n.BI \"%s \" %s\n", flagName, name)
				} else {
					fmt.Fprintf(&b, ".TP\n.B %s\n", flagName)
				}
				b.WriteString(roff(usage))
				if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
					fmt.Fprintf(&b, "(default: %s)\n", strings.TrimSuffix(roff(f.DefValue), "\n"))
				}
			}
			if c.Help != "" {
				b.WriteString(".PP\n.nf\n" + roff(c.Help) + ".fi\n")
			}
		})
	}
	b.WriteString(".SH EXIT STATUS\n0 done, 1 failed, 2 usage error, 3 accepted and still being retried (lease request).\n")
	b.WriteString(".SH SEE ALSO\n.BR ferry (1)\n")
	return b.String()
}

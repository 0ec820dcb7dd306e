package applets

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func run(argv ...string) (int, string, string) {
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Log: nil}
	code := Main(context.Background(), env, argv)
	return code, out.String(), errb.String()
}

func TestHelpListsEveryApplet(t *testing.T) {
	for _, argv := range [][]string{{"ferry"}, {"ferry", "--help"}, {"/usr/bin/ferry", "help"}} {
		code, out, _ := run(argv...)
		if code != 0 {
			t.Fatalf("%v: exit %d", argv, code)
		}
		for _, a := range All() {
			if !strings.Contains(out, "  "+a.Name+" ") {
				t.Errorf("%v: help does not list %q:\n%s", argv, a.Name, out)
			}
		}
	}
}

func TestDispatchBySymlinkName(t *testing.T) {
	code, _, errb := run("/sbin/switch_root", "--help")
	if code != 0 || !strings.Contains(errb, "NEWROOT") {
		t.Fatalf("switch_root via argv[0]: exit %d, stderr %q", code, errb)
	}
}

func TestDispatchByFirstArgument(t *testing.T) {
	code, _, errb := run("ferry", "kexec", "--help")
	if code != 0 || !strings.Contains(errb, "kexec") {
		t.Fatalf("ferry kexec --help: exit %d, stderr %q", code, errb)
	}
}

func TestAtNameReachesItsApplet(t *testing.T) {
	// The keeper runs as "@ferry keeper" so that systemd spares it.
	code, _, errb := run("@ferry", "keeper", "--help")
	if code != 0 || !strings.Contains(errb, "--listen") {
		t.Fatalf("@ferry keeper --help: exit %d, stderr %q", code, errb)
	}
}

func TestUnknownAppletExits2(t *testing.T) {
	code, _, errb := run("ferry", "frobnicate")
	if code != 2 || !strings.Contains(errb, `unknown applet "frobnicate"`) {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
}

func TestEveryAppletHasHelp(t *testing.T) {
	for _, a := range All() {
		code, out, errb := run("ferry", a.Name, "--help")
		if code != 0 || !strings.Contains(out+errb, a.Name) || len(out+errb) < 40 {
			t.Errorf("%s --help: exit %d, output %q", a.Name, code, out+errb)
		}
	}
}

func TestInitRefusesWhenNotPID1(t *testing.T) {
	code, _, errb := run("ferry", "init")
	if code != 1 || !strings.Contains(errb, "PID 1") {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
}

// ferry --version and every applet's --version, by name or through a
// link, print the one version line.
func TestVersionOnFerryAndEveryApplet(t *testing.T) {
	for _, argv := range [][]string{{"ferry", "--version"}, {"ferry", "lender", "--version"}, {"/usr/bin/kexec", "--version"},
		{"borrower", "--version"}, {"ferry", "gateway", "--version"}} {
		var out bytes.Buffer
		env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard, Log: slog.New(slog.DiscardHandler)}
		if code := Main(context.Background(), env, argv); code != 0 || !strings.HasPrefix(out.String(), "ferry ") || strings.Count(out.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, %q", argv, code, out.String())
		}
	}
}

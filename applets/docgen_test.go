package applets

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMain lets the shell completion test run this test binary as
// `ferry`: with FERRY_TEST_AS_FERRY=1 it is the multicall binary.
func TestMain(m *testing.M) {
	if os.Getenv("FERRY_TEST_AS_FERRY") == "1" {
		os.Exit(Main(context.Background(), StdEnv(), append([]string{"ferry"}, os.Args[1:]...)))
	}
	os.Exit(m.Run())
}

func completions(words ...string) []string {
	_, out, _ := run(append([]string{"ferry", "__complete"}, words...)...)
	return strings.Fields(out)
}

func TestCompletionWalksTheCommandTree(t *testing.T) {
	for _, c := range []struct {
		words []string
		want  []string
		not   []string
	}{
		{[]string{""}, []string{"lender", "borrower", "kexec", "completion", "man"}, nil},
		{[]string{"lender", ""}, []string{"server", "lease", "boot"}, []string{"--dir"}},
		{[]string{"lender", "server", ""}, []string{"add", "list", "power", "validate", "maintenance", "events"}, nil},
		{[]string{"lender", "server", "power", "--dir", "/d", "52:54:00:00:00:01", ""}, []string{"on", "off", "status", "check"}, nil},
		{[]string{"lender", "server", "list", "-"}, []string{"--dir", "-o", "--no-headers"}, []string{"--mac"}},
		{[]string{"borrower", "lease", "request", "--"}, []string{"--wait", "--pool", "--duration", "--count", "-o"}, nil},
		{[]string{"borrower", "lease", "request", "--image", ""}, []string{filesHint}, nil},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}, nil},
		{[]string{"kexec", ""}, []string{filesHint}, nil},
	} {
		got := completions(c.words...)
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("complete %q: %v lacks %q", c.words, got, w)
			}
		}
		for _, w := range c.not {
			if slices.Contains(got, w) {
				t.Errorf("complete %q: %v has %q", c.words, got, w)
			}
		}
	}
}

// TestBashCompletes sources `ferry completion bash` in a real bash, with
// this test binary as ferry, and completes as a user pressing TAB would.
func TestBashCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	_, script, _ := run("ferry", "completion", "bash")
	self, _ := os.Executable()
	sh := `ferry() { FERRY_TEST_AS_FERRY=1 "$SELF" "$@"; }
` + script + `
COMP_WORDS=(ferry lender server po); COMP_CWORD=3; _ferry; echo "1:${COMPREPLY[*]}"
COMP_WORDS=(ferry lender server power 52:54:00:00:00:01 s); COMP_CWORD=5; _ferry; echo "2:${COMPREPLY[*]}"
COMP_WORDS=(ferry borrower lease request --w); COMP_CWORD=4; _ferry; echo "3:${COMPREPLY[*]}"
`
	cmd := exec.Command(bash, "--norc", "-c", sh)
	cmd.Env = append(os.Environ(), "SELF="+self)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	for _, want := range []string{"1:power\n", "2:status\n", "3:--wait\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("bash completion lacks %q:\n%s", want, out)
		}
	}
	for _, sh := range []string{"zsh", "fish"} {
		if code, out, _ := run("ferry", "completion", sh); code != 0 || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: exit %d\n%s", sh, code, out)
		}
	}
	if code, _, _ := run("ferry", "completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
}

// TestManPagesCoverEveryCommand: each command of a tree is in its
// applet's page with every flag; groff reads every page without a warning.
func TestManPagesCoverEveryCommand(t *testing.T) {
	dir := t.TempDir()
	if code, _, errb := run("ferry", "man", dir); code != 0 {
		t.Fatalf("ferry man: exit %d %s", code, errb)
	}
	for _, a := range All() {
		data, err := os.ReadFile(filepath.Join(dir, "ferry-"+a.Name+".1"))
		if err != nil {
			t.Fatal(err)
		}
		page := string(data)
		if a.Tree == nil {
			if !strings.Contains(page, ".SH DESCRIPTION") || len(page) < 300 {
				t.Errorf("%s: page without its help:\n%s", a.Name, page)
			}
			continue
		}
		walkLeaves("ferry "+a.Name, *a.Tree, func(path string, c Command) {
			if !strings.Contains(page, ".SS \""+path) {
				t.Errorf("%s: no section for %q", a.Name, path)
			}
			for _, f := range flagsOf(c) {
				if !strings.Contains(page, `\-`+f.Name) {
					t.Errorf("%s: %s lacks flag %s", a.Name, path, f.Name)
				}
			}
		})
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("no groff to check the pages")
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	for _, p := range pages {
		out, err := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", p).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff %s: %v\n%s", filepath.Base(p), err, out)
		}
	}
}

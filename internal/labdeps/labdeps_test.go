package labdeps

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every command a lab script or the lab's Go code needs comes from a
// package scripts/ci-deps.sh installs (or an Essential one): a fresh
// Debian 12 machine that ran ci-deps runs every script.
func TestCIDepsInstallsEveryCommandTheLabNeeds(t *testing.T) {
	uses, err := ScriptNeeds("../../scripts")
	if err != nil {
		t.Fatal(err)
	}
	if len(uses) < 20 {
		t.Fatalf("found only %d need uses in scripts/: the parser lost them", len(uses))
	}
	for _, dir := range []string{"../vmlab", "../netnstest", "../debtest"} {
		g, err := GoRuns(dir)
		if err != nil {
			t.Fatal(err)
		}
		uses = append(uses, g...)
	}
	pkgs, err := CIDeps("../../scripts/ci-deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !pkgs["qemu-system-x86"] || !pkgs["tcpdump"] {
		t.Fatalf("ci-deps PKGS parsed as %v", pkgs)
	}
	if m := Missing(uses, pkgs); len(m) > 0 {
		t.Errorf("commands ci-deps.sh would not provide on a fresh machine:\n%s", strings.Join(m, "\n"))
	}
}

// The check fails when a script needs a command whose package ci-deps
// leaves out (tcpdump, the case that stopped `make demo`), and when it
// needs a command the table does not know.
func TestMissingNamesTheScriptTheCommandAndThePackage(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "demo.sh"), []byte("#!/bin/sh\n. lib.sh\nneed ip tcpdump # capture\nif [ x ]; then need frobnicate; fi\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "ci-deps.sh"), []byte("x\nPKGS=(\n\tiproute2 # ip\n)\n"), 0o644)
	uses, err := ScriptNeeds(dir)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := CIDeps(filepath.Join(dir, "ci-deps.sh"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(Missing(uses, pkgs), "\n")
	for _, want := range []string{
		`demo.sh:3: command "tcpdump" needs Debian package tcpdump, which scripts/ci-deps.sh does not install`,
		`demo.sh:4: command "frobnicate" has no package`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, `"ip"`) {
		t.Errorf("ip is installed by iproute2 but reported:\n%s", got)
	}
}

// The table says what dpkg says, for each command installed here: a
// wrong package in the table would make the check pass on a machine
// where the command is missing.
func TestPackagesAgreeWithDpkg(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("no dpkg")
	}
	cands := map[string][]string{}
	var all []string
	for cmd := range Packages() {
		if p, err := exec.LookPath(cmd); err == nil {
			cands[cmd] = spellings(p)
			all = append(all, cands[cmd]...)
		}
	}
	owners := owners(all)
	checked := 0
	for cmd, paths := range cands {
		got := ""
		for _, p := range paths {
			if got = owners[p]; got != "" {
				break
			}
		}
		if got == "" {
			continue // not from a package (a local install): nothing to compare
		}
		checked++
		if want := Packages()[cmd]; got != want {
			t.Errorf("%s (%s) is from package %s, the table says %s", cmd, paths[0], got, want)
		}
	}
	if checked < 10 {
		t.Skipf("only %d of the commands are installed from packages here", checked)
	}
}

// spellings are the paths dpkg may know a command by: merged /usr (dpkg
// knows /bin/ip, PATH finds /usr/bin/ip) and the target of alternatives
// symlinks (awk -> mawk).
func spellings(path string) []string {
	var out []string
	for _, p := range []string{path, evalOr(path)} {
		out = append(out, p)
		for _, d := range []string{"/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/"} {
			out = append(out, d+filepath.Base(p))
		}
	}
	return out
}

// owners asks dpkg, in one call, which package ships each of paths.
func owners(paths []string) map[string]string {
	out, _ := exec.Command("dpkg-query", append([]string{"-S"}, paths...)...).Output() // not-found paths make it exit 1
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		pkg, file, ok := strings.Cut(line, ": ")
		if ok && !strings.Contains(pkg, "diversion") {
			pkg, _, _ = strings.Cut(pkg, ":") // pkg:amd64
			m[file] = pkg
		}
	}
	return m
}

func evalOr(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

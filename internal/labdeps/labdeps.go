// Package labdeps finds the commands the lab needs (the `need CMD...`
// lines of scripts/*.sh and the commands the lab's Go code runs) and the
// Debian packages scripts/ci-deps.sh installs, so a check can fail when a
// script needs a command that a fresh machine would not have: `make demo`
// once stopped at "missing command: tcpdump" on a clean Debian 12 because
// ci-deps did not install it.
package labdeps

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Use is one command a script or the lab's Go code needs, and where.
type Use struct {
	Cmd   string
	Where string // file:line
}

// Packages maps each command the lab uses to the Debian 12 package that
// ships it. A command missing here fails the check: add it with its
// package (dpkg -S $(command -v CMD)), and the package to ci-deps.sh
// unless it is Essential.
func Packages() map[string]string {
	return map[string]string{
		"apt-cache": "apt", "apt-get": "apt",
		"awk":                "mawk",
		"busybox":            "busybox-static",
		"chroot":             "coreutils",
		"cp":                 "coreutils",
		"debootstrap":        "debootstrap",
		"cpio":               "cpio",
		"curl":               "curl",
		"depmod":             "kmod",
		"modprobe":           "kmod",
		"dpkg":               "dpkg",
		"systemd-analyze":    "systemd",
		"dpkg-deb":           "dpkg",
		"env":                "coreutils",
		"ganesha.nfsd":       "nfs-ganesha",
		"grep":               "grep",
		"ipmi_sim":           "openipmi",
		"ipmitool":           "ipmitool",
		"redfishtool":        "redfishtool",
		"ip":                 "iproute2",
		"ss":                 "iproute2",
		"losetup":            "mount",
		"mount":              "mount",
		"mkfs.xfs":           "xfsprogs",
		"nft":                "nftables",
		"openssl":            "openssl",
		"pgrep":              "procps",
		"pki":                "strongswan-pki",
		"qemu-system-x86_64": "qemu-system-x86",
		"rpcbind":            "rpcbind",
		"rpcinfo":            "rpcbind",
		"sh":                 "dash",
		"sha256sum":          "coreutils",
		"sleep":              "coreutils",
		"tail":               "coreutils",
		"timeout":            "coreutils",
		"swanctl":            "strongswan-swanctl",
		"tcpdump":            "tcpdump",
		"unshare":            "util-linux",
		"xz":                 "xz-utils",
		"zstd":               "zstd",
	}
}

// Essential are the Debian 12 packages with "Essential: yes" that the lab
// relies on: every Debian system has them, so ci-deps need not list them.
func Essential() map[string]bool {
	return map[string]bool{"coreutils": true, "dash": true, "dpkg": true, "grep": true, "util-linux": true, "bash": true, "sed": true, "findutils": true}
}

// Toolchain are commands that are not Debian packages on CI (Go 1.26 is
// newer than Debian 12's golang); the check does not map them.
func Toolchain() map[string]bool { return map[string]bool{"go": true} }

// needLine is `need CMD...` at the start of a line (indented or not);
// the words end at a comment, `;`, `&&`, `||` or the end of the line.
var needLine = regexp.MustCompile(`^\s*(?:if .*then\s+)?need\s+([^#;&|]+)`)

// ScriptNeeds reads the `need` lines of every *.sh under dir.
func ScriptNeeds(dir string) ([]Use, error) {
	var uses []Use
	files, err := filepath.Glob(filepath.Join(dir, "*.sh"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := eachLine(f, func(n int, line string) {
			m := needLine.FindStringSubmatch(line)
			if m == nil || strings.HasPrefix(strings.TrimSpace(line), "need()") {
				return
			}
			for _, c := range strings.Fields(m[1]) {
				if c == "fi" {
					break
				}
				uses = append(uses, Use{Cmd: c, Where: fmt.Sprintf("%s:%d", filepath.Base(f), n)})
			}
		}); err != nil {
			return nil, err
		}
	}
	return uses, nil
}

// argOf says which argument of a call names the command it runs: exec
// calls, vmlab.Run and vmlab.Start (whose argv follows name and log).
func argOf(call *ast.CallExpr) int {
	switch f := call.Fun.(type) {
	case *ast.SelectorExpr:
		switch f.Sel.Name {
		case "Command", "LookPath", "Run":
			return 0
		case "CommandContext":
			return 1
		case "Start":
			return 3
		}
	case *ast.Ident:
		switch f.Name {
		case "Run", "start":
			return map[string]int{"Run": 0, "start": 2}[f.Name]
		case "Start":
			return 3
		}
	}
	return -1
}

// GoRuns reads the commands the Go files under dir (recursively) run
// by a literal name.
func GoRuns(dir string) ([]Use, error) {
	var uses []Use
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
			return err
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			i := argOf(call)
			if i < 0 || i >= len(call.Args) {
				return true
			}
			lit, ok := call.Args[i].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			cmd, err := strconv.Unquote(lit.Value)
			if err == nil && cmd != "" && !strings.ContainsAny(cmd, " /") {
				pos := fset.Position(lit.Pos())
				uses = append(uses, Use{Cmd: cmd, Where: fmt.Sprintf("%s:%d", filepath.Base(p), pos.Line)})
			}
			return true
		})
		return nil
	})
	return uses, err
}

// pkgsArray is the PKGS=( ... ) array of ci-deps.sh.
var pkgsArray = regexp.MustCompile(`(?s)\nPKGS=\((.*?)\n\)`)

// CIDeps reads the packages the PKGS array of ci-deps.sh installs.
func CIDeps(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := pkgsArray.FindSubmatch(b)
	if m == nil {
		return nil, fmt.Errorf("%s: no PKGS=( ... ) array", path)
	}
	pkgs := map[string]bool{}
	for _, line := range strings.Split(string(m[1]), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, p := range strings.Fields(line) {
			pkgs[p] = true
		}
	}
	return pkgs, nil
}

// Missing lists, one line each, the uses whose command has no package in
// the table, or whose package neither ci-deps installs nor is Essential.
func Missing(uses []Use, cideps map[string]bool) []string {
	table, essential, tool := Packages(), Essential(), Toolchain()
	seen := map[string]bool{}
	var out []string
	for _, u := range uses {
		if tool[u.Cmd] || seen[u.Cmd] {
			continue
		}
		seen[u.Cmd] = true
		pkg, ok := table[u.Cmd]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: command %q has no package in labdeps.Packages (add it, and its package to scripts/ci-deps.sh)", u.Where, u.Cmd))
		case !cideps[pkg] && !essential[pkg]:
			out = append(out, fmt.Sprintf("%s: command %q needs Debian package %s, which scripts/ci-deps.sh does not install", u.Where, u.Cmd, pkg))
		}
	}
	sort.Strings(out)
	return out
}

func eachLine(path string, f func(n int, line string)) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f(n, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

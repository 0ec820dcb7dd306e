// Package buildinfo says which ferry this is: the version the Makefile
// stamps (git describe), else the module version, and the commit, its
// time and whether the tree had changes, from what the Go toolchain
// records at build time (runtime/debug.ReadBuildInfo).
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set by the linker only: -ldflags '-X ferry/buildinfo.version=v1.2.3'.
var version string

// Info is what a build knows of itself.
type Info struct {
	Version  string // "v1.2.3", "v1.2.3-4-gabcdef1-dirty", or "devel"
	Revision string // the commit, when the build recorded one
	Time     string // the commit's time (RFC 3339)
	Modified bool   // the tree had uncommitted changes
	Go       string // the Go toolchain
	Platform string // GOOS/GOARCH
}

// Read is this binary's Info.
func Read() Info {
	i := Info{Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.Revision = s.Value
			case "vcs.time":
				i.Time = s.Value
			case "vcs.modified":
				i.Modified = s.Value == "true"
			}
		}
	}
	if i.Version == "" {
		i.Version = "devel"
	}
	return i
}

// String is the one line `ferry --version` prints.
func (i Info) String() string {
	var extra []string
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		extra = append(extra, "commit "+rev)
	}
	if i.Time != "" {
		extra = append(extra, i.Time)
	}
	if i.Modified {
		extra = append(extra, "modified")
	}
	s := "ferry " + i.Version
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return fmt.Sprintf("%s %s %s", s, i.Go, i.Platform)
}

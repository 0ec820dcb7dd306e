package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestStringNamesVersionCommitAndToolchain(t *testing.T) {
	i := Info{Version: "v1.2.3-4-gabcdef1", Revision: "abcdef1234567890abcd", Time: "2026-12-06T04:00:00Z", Modified: true,
		Go: "go1.26.0", Platform: "linux/amd64"}
	want := "ferry v1.2.3-4-gabcdef1 (commit abcdef123456, 2026-12-06T04:00:00Z, modified) go1.26.0 linux/amd64"
	if got := i.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	r := Read()
	if r.Version == "" || r.Go != runtime.Version() || !strings.HasPrefix(r.String(), "ferry ") {
		t.Fatalf("Read() = %+v", r)
	}
}

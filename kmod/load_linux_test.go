package kmod

import (
	"os"
	"strings"
	"testing"
)

func TestReleaseMatchesProc(t *testing.T) {
	want, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Skip(err)
	}
	got, err := Release()
	if err != nil || got != strings.TrimSpace(string(want)) {
		t.Fatalf("Release() = %q, %v; /proc says %q", got, err, want)
	}
}

func TestFinitModuleNamesPathAndErrno(t *testing.T) {
	// A non-module gives ENOEXEC, or EPERM/ENOSYS where loading is not
	// allowed: either way the error names the call, path and errno.
	p := t.TempDir() + "/bogus.ko"
	os.WriteFile(p, []byte("not a module"), 0o644)
	_, err := finitModule(p)
	if err == nil || !strings.Contains(err.Error(), `finit_module("`+p+`") = E`) {
		t.Fatalf("got %v", err)
	}
}

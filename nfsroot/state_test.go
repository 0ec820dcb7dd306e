package nfsroot

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// stateTree makes a small ferry state directory.
func stateTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "ferry")
	for p, mode := range map[string]os.FileMode{
		"bin/ferry":           0o755,
		"state/settings.json": 0o644,
		"state/key.pem":       0o644, // too open at the source: must land 0600
		"state/cert.pem":      0o644,
	} {
		writeTestFile(t, filepath.Join(src, p), "contents of "+p, mode)
	}
	if err := os.Symlink("ferry", filepath.Join(src, "bin/init")); err != nil {
		t.Fatal(err)
	}
	return src
}

func writeTestFile(t *testing.T, p, s string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // beat the umask
		t.Fatal(err)
	}
}

// checkState asserts that dst holds stateTree's files with the right modes.
func checkState(t *testing.T, dst string) {
	t.Helper()
	for p, mode := range map[string]os.FileMode{
		"bin/ferry": 0o755, "state/settings.json": 0o644, "state/key.pem": 0o600, "state/cert.pem": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(dst, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
		if b, _ := os.ReadFile(filepath.Join(dst, p)); string(b) != "contents of "+p {
			t.Errorf("%s: contents %q", p, b)
		}
	}
	if l, err := os.Readlink(filepath.Join(dst, "bin/init")); err != nil || l != "ferry" {
		t.Errorf("bin/init -> %q, %v; want -> ferry", l, err)
	}
	filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func TestCopyTreeKeepsModesAndLocksKeys(t *testing.T) {
	src := stateTree(t)
	dst := filepath.Join(t.TempDir(), "out")
	if err := copyTree(src, dst, nil); err != nil {
		t.Fatal(err)
	}
	checkState(t, dst)
	// Copying again over the first copy works (symlinks replaced, files renamed over).
	if err := copyTree(src, dst, nil); err != nil {
		t.Fatalf("second copy: %v", err)
	}
	checkState(t, dst)
}

func TestCopyTreeRefusesSpecialFiles(t *testing.T) {
	src := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	err := copyTree(src, filepath.Join(t.TempDir(), "out"), nil)
	if err == nil || !strings.Contains(err.Error(), "unsupported file type") {
		t.Fatalf("copyTree with a FIFO = %v, want a refusal", err)
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeTmpfs, "tmpfs": ModeTmpfs, "copy": ModeCopy} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseMode("disk"); err == nil {
		t.Error(`ParseMode("disk") succeeded`)
	}
}

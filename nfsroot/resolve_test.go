package nfsroot

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestResolveInFollowsAbsoluteSymlinksInsideRoot(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "lib/systemd"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "sbin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "lib/systemd/systemd"), nil, 0o755))
	must(os.Symlink("/lib/systemd/systemd", filepath.Join(root, "sbin/init")))
	must(os.Symlink("../../../../../etc", filepath.Join(root, "sbin/escape")))
	must(os.Symlink("loop", filepath.Join(root, "loop")))
	must(os.Symlink("usr/lib", filepath.Join(root, "lib64")))

	for _, tc := range []struct{ in, want string }{
		{"/sbin/init", "/lib/systemd/systemd"},
		{"sbin/init", "/lib/systemd/systemd"},
		{"/sbin/../sbin/./init", "/lib/systemd/systemd"},
		{"/sbin/escape", "/etc"}, // not the host's /etc: stays under root
		{"/../../lib", "/lib"},
	} {
		got, err := resolveIn(root, tc.in)
		if tc.want == "/etc" {
			if !errors.Is(err, fs.ErrNotExist) || got != filepath.Join(root, "etc") {
				t.Errorf("resolveIn(%q) = %q, %v; want %q not existing", tc.in, got, err, filepath.Join(root, "etc"))
			}
			continue
		}
		if err != nil || got != filepath.Join(root, tc.want) {
			t.Errorf("resolveIn(%q) = %q, %v; want %q", tc.in, got, err, filepath.Join(root, tc.want))
		}
	}
	if _, err := resolveIn(root, "/loop/x"); err == nil {
		t.Error("resolveIn through a symlink loop succeeded")
	}
	if got, err := resolveIn(root, "/lib64/x/y"); !errors.Is(err, fs.ErrNotExist) || got != filepath.Join(root, "usr/lib/x/y") {
		t.Errorf("resolveIn(/lib64/x/y) = %q, %v; want %s/usr/lib/x/y, not exist", got, err, root)
	}
}

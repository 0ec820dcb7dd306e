package nfsroot

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPlaceStateTmpfsKeepsKeysOffTheExport(t *testing.T) {
	var out string
	if !inChild(t, &out) {
		return
	}
	src := stateTree(t)
	newRoot := t.TempDir() // stands in for the NFS export
	if err := PlaceState(newRoot, src, ModeTmpfs); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(newRoot, src)
	t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
	checkState(t, dst)
	var st unix.Statfs_t
	if err := unix.Statfs(dst, &st); err != nil || st.Type != tmpfsMagic {
		t.Fatalf("statfs(%s) = %#x, %v; want tmpfs", dst, st.Type, err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state tmpfs mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	// Under the tmpfs, the export holds only the empty mount point.
	if err := unix.Unmount(dst, 0); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(dst); err != nil || len(ents) != 0 {
		t.Errorf("export under the state tmpfs holds %v (%v), want nothing", ents, err)
	}
}

func TestPlaceStateCopyWritesExportWithoutFollowingItsSymlinks(t *testing.T) {
	src := stateTree(t)
	newRoot := t.TempDir()
	// The export's first path component is an absolute symlink: it must be
	// followed inside newRoot, never on the host.
	first := filepath.Join(newRoot, firstComponent(src))
	hostTarget := "/ferry-test-must-not-exist"
	if err := os.Symlink(hostTarget, first); err != nil {
		t.Fatal(err)
	}
	if err := PlaceState(newRoot, src, ModeCopy); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(hostTarget); err == nil {
		os.RemoveAll(hostTarget)
		t.Fatalf("PlaceState followed the export's symlink to the host's %s", hostTarget)
	}
	rest, _ := filepath.Rel("/"+firstComponent(src), src)
	checkState(t, filepath.Join(newRoot, hostTarget, rest))
}

func firstComponent(p string) string {
	for p != "/" && filepath.Dir(p) != "/" {
		p = filepath.Dir(p)
	}
	return filepath.Base(p)
}

func TestPlaceStateRefusesRelativeOrRoot(t *testing.T) {
	for _, dir := range []string{"ferry", "/", ""} {
		if err := PlaceState(t.TempDir(), dir, ModeCopy); err == nil {
			t.Errorf("PlaceState(%q) succeeded", dir)
		}
	}
}

// Image B leaves the binary out when the keeper already runs: the root
// gets the state, not a second 20 MB copy of ferry.
func TestPlaceStateLeavesSkippedPathsOut(t *testing.T) {
	src := stateTree(t)
	newRoot := t.TempDir()
	if err := PlaceState(newRoot, src, ModeCopy, "bin"); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(newRoot, src)
	if _, err := os.Lstat(filepath.Join(dst, "bin")); err == nil {
		t.Error("bin/ was placed although skipped")
	}
	for _, p := range []string{"state/settings.json", "state/key.pem", "state/cert.pem"} {
		if b, err := os.ReadFile(filepath.Join(dst, p)); err != nil || string(b) != "contents of "+p {
			t.Errorf("%s: %q, %v; want it placed", p, b, err)
		}
	}
	for _, bad := range []string{"/bin", "..", "../x", "."} {
		if err := PlaceState(t.TempDir(), src, ModeCopy, bad); err == nil {
			t.Errorf("skip %q accepted", bad)
		}
	}
}

package rootprep

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// xfsMount makes a small XFS file system with reflink on a loop device
// and mounts it for the test, or skips when mkfs.xfs or loop mounts are
// unavailable.
func xfsMount(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		t.Skip("mkfs.xfs not installed (apt-get install xfsprogs): reflink not tested, only the copy fallback")
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "xfs.img"), filepath.Join(dir, "mnt")
	f, err := os.Create(img)
	must(t, err)
	must(t, f.Truncate(320<<20))
	f.Close()
	must(t, os.Mkdir(mnt, 0o755))
	if out, err := exec.Command("mkfs.xfs", "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.xfs: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("loop mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("umount %s: %v", mnt, err)
		}
	})
	return mnt
}

func TestPrepareReflinksOnXFS(t *testing.T) {
	mnt := xfsMount(t)
	tpl := filepath.Join(mnt, "template")
	must(t, os.MkdirAll(tpl, 0o755))
	data := bytes.Repeat([]byte("ferry root "), 1<<20)
	must(t, os.WriteFile(filepath.Join(tpl, "big"), data, 0o644))
	p, err := New(filepath.Join(mnt, "roots"), filepath.Join(mnt, "archives"), nil)
	must(t, err)
	root, st, err := p.Prepare(bg, tpl, "s")
	must(t, err)
	if st.ReflinkBytes != int64(len(data)) {
		t.Errorf("reflinked %d of %d bytes", st.ReflinkBytes, len(data))
	}
	got, err := os.ReadFile(filepath.Join(root, "big"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("reflinked copy differs (%v)", err)
	}
}

func TestPrepareCopiesWhereReflinkIsUnsupported(t *testing.T) {
	base := memDir(t) // tmpfs has no FICLONE
	tpl := filepath.Join(base, "template")
	must(t, os.MkdirAll(tpl, 0o755))
	data := bytes.Repeat([]byte("x"), 3<<20+5)
	must(t, os.WriteFile(filepath.Join(tpl, "big"), data, 0o644))
	p, err := New(filepath.Join(base, "roots"), filepath.Join(base, "archives"), nil)
	must(t, err)
	root, st, err := p.Prepare(bg, tpl, "s")
	must(t, err)
	got, _ := os.ReadFile(filepath.Join(root, "big"))
	if st.ReflinkBytes != 0 || st.Bytes != int64(len(data)) || !bytes.Equal(got, data) {
		t.Errorf("stats %+v; copy equal: %v", st, bytes.Equal(got, data))
	}
}

package initrd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// rawEntry hand-writes a newc record, for names our writer refuses.
func rawEntry(name string, mode uint32, body string) []byte {
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		1, mode, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(name)+1, 0)
	b := append([]byte(h), name...)
	b = append(b, 0)
	b = pad4(b)
	return pad4(append(b, body...))
}

func rawArchive(entries ...[]byte) []byte {
	var b []byte
	for _, e := range entries {
		b = append(b, e...)
	}
	return append(b, rawEntry(trailer, 0, "")...)
}

func TestExtractRefusesDotDot(t *testing.T) {
	img := rawArchive(rawEntry("ok", sIFREG|0o644, "fine"), rawEntry("a/../../evil", sIFREG|0o644, "x"))
	dir := t.TempDir()
	_, err := Extract(writeImage(t, img), filepath.Join(dir))
	if !errors.Is(err, ErrUnsafeName) {
		t.Fatalf("got %v, want ErrUnsafeName", err)
	}
	wantErr(t, err, "in.img: segment 0 (none) at offset 0x0: cpio entry 1 \"a/../../evil\" at 0x78")
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "evil")); err == nil {
		t.Fatal("escaped")
	}
}

func TestExtractConfinesAbsoluteNamesAndSymlinks(t *testing.T) {
	img := rawArchive(
		rawEntry("/abs/file", sIFREG|0o644, "abs"),
		rawEntry("up", sIFLNK|0o777, "/"),
		rawEntry("up/etc/escaped", sIFREG|0o644, "x"),
	)
	parent := t.TempDir()
	dir := filepath.Join(parent, "root")
	os.Mkdir(dir, 0o755)
	_, err := Extract(writeImage(t, img), dir)
	if err == nil {
		t.Fatal("write through a symlink to / accepted")
	}
	wantErr(t, err, "cpio entry 2 \"up/etc/escaped\"")
	if d, err := os.ReadFile(filepath.Join(dir, "abs/file")); err != nil || string(d) != "abs" {
		t.Fatalf("absolute name not confined: %q %v", d, err)
	}
	if _, err := os.Stat("/etc/escaped"); err == nil {
		t.Fatal("escaped to /etc")
	}
}

func TestExtractLaterSegmentsOverride(t *testing.T) {
	a := archiveOf(t, []File{{Path: "etc/x", Mode: 0o644, Data: []byte("old")}})
	b := compress(t, Gzip, archiveOf(t, []File{{Path: "etc/x", Mode: 0o600, Data: []byte("new")}}))
	dir := t.TempDir()
	rep, err := Extract(writeImage(t, append(a, b...)), dir)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := os.ReadFile(filepath.Join(dir, "etc/x")); string(d) != "new" || rep.Segments != 2 {
		t.Fatalf("got %q, %+v", d, rep)
	}
}

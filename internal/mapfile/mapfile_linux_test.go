package mapfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMapPathGivesTheBytesAndRefusesWhatItShould(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("kernel"), 0o644)
	b, err := MapPath(p, 6)
	if err != nil || string(b) != "kernel" {
		t.Fatalf("%q, %v", b, err)
	}
	Unmap(b)
	if _, err := MapPath(p, 5); err == nil || !strings.Contains(err.Error(), "6 bytes, more than 5") {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := MapPath(dir, 1<<20); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	if b, err := MapPath(empty, 1); b != nil || err != nil {
		t.Errorf("empty: %q, %v", b, err)
	}
	Unmap(nil)
}

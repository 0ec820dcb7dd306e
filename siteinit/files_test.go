package siteinit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A plan is written whole or not at all: an existing file refuses it
// before anything is written, and a file that cannot be written leaves
// no other file behind (nor any temporary file).
func TestCommitWritesAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "b.pem"), []byte("old"), 0o644)
	p := Plan{}
	p.Add(filepath.Join(dir, "a.key"), []byte("secret"), 0o600)
	p.Add(filepath.Join(dir, "b.pem"), []byte("new"), 0o644)
	err := p.Commit()
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "b.pem")+" exists") {
		t.Fatalf("commit over an existing file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.key")); err == nil {
		t.Fatal("a.key written although the plan was refused")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "b.pem")); string(b) != "old" {
		t.Fatalf("b.pem = %q, want it untouched", b)
	}

	os.WriteFile(filepath.Join(dir, "notadir"), nil, 0o644)
	p = Plan{}
	p.Add(filepath.Join(dir, "c.key"), []byte("secret"), 0o600)
	p.Add(filepath.Join(dir, "notadir", "d.pem"), []byte("x"), 0o644)
	if err := p.Commit(); err == nil {
		t.Fatal("commit into a file as a directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "b.pem" && e.Name() != "notadir" {
			t.Errorf("left behind: %s", e.Name())
		}
	}

	p = Plan{Force: true}
	p.Add(filepath.Join(dir, "b.pem"), []byte("new"), 0o644)
	p.Add(filepath.Join(dir, "k", "e.key"), []byte("secret"), 0o600)
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "b.pem")); string(b) != "new" {
		t.Fatalf("b.pem = %q after --force", b)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "k", "e.key")); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("e.key: %v", fi)
	}
}

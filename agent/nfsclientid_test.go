package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// TestNFSClientID: each lent server's NFSv4 client gets its own identity
// (the trace) unless the command line set one; no nfs module, nothing.
func TestNFSClientID(t *testing.T) {
	sys := t.TempDir()
	if err := nfsClientID(sys, "L1-s1"); err != nil {
		t.Fatalf("no nfs module: %v", err)
	}
	dir := filepath.Join(sys, "module", "nfs", "parameters")
	os.MkdirAll(dir, 0o755)
	p := filepath.Join(dir, "nfs4_unique_id")
	os.WriteFile(p, []byte("\n"), 0o644) // the kernel shows an unset one as an empty line
	if err := nfsClientID(sys, "L1-s1"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "L1-s1" {
		t.Errorf("nfs4_unique_id %q, want the trace L1-s1", b)
	}
	os.WriteFile(p, []byte("operator\n"), 0o644)
	if err := nfsClientID(sys, "L1-s2"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "operator\n" {
		t.Errorf("nfs4_unique_id %q: the command line's value must stay", b)
	}
}

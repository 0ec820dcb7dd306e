//go:build linux && amd64

package kexec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadRAMKeepsSystemRAMInWholePages(t *testing.T) {
	dir := t.TempDir()
	for i, e := range [][3]string{
		{"0x0", "0x9fbff", "System RAM"},
		{"0x9fc00", "0x9ffff", "Reserved"},
		{"0x100000", "0x7ffdffff", "System RAM"},
		{"0xfeffc000", "0xfeffffff", "Reserved"},
	} {
		d := filepath.Join(dir, string(rune('0'+i)))
		os.Mkdir(d, 0o755)
		for j, name := range []string{"start", "end", "type"} {
			os.WriteFile(filepath.Join(d, name), []byte(e[j]+"\n"), 0o644)
		}
	}
	ram, err := readRAM(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []memRange{{0, 0x9f000}, {0x100000, 0x7ffe0000}}
	if len(ram) != 2 || ram[0] != want[0] || ram[1] != want[1] {
		t.Fatalf("got %x, want %x", ram, want)
	}
	os.WriteFile(filepath.Join(dir, "2", "end"), []byte("0x10\n"), 0o644)
	if _, err := readRAM(dir); err == nil || !strings.Contains(err.Error(), "end 0x10 before start 0x100000") {
		t.Fatalf("got %v", err)
	}
}

func TestPurgatoryCodeTakesEntryAndZeroPage(t *testing.T) {
	b, at, err := purgatoryCode()
	if err != nil || at != 0x3000 || len(b) < 24 {
		t.Fatalf("%d bytes at %#x: %v", len(b), at, err)
	}
}

package keeper

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// /shutdown stops the keepers by their "@ferry" argv[0], which systemd
// also reads to spare them; nothing else, and never itself.
func TestKeepersAreTheAtFerryProcessesOnly(t *testing.T) {
	proc := t.TempDir()
	for pid, cmdline := range map[string]string{
		"1": "/shutdown\x00poweroff\x00", "7": "@ferry\x00keeper\x00--trace\x00x\x00", "8": "@ferry-other\x00",
		"9": "/usr/sbin/ferry\x00keeper\x00", "10": "sshd: @ferry\x00", "self": "@ferry\x00", "12": "@ferry\x00",
	} {
		os.MkdirAll(filepath.Join(proc, pid), 0o755)
		os.WriteFile(filepath.Join(proc, pid, "cmdline"), []byte(cmdline), 0o644)
	}
	got := Keepers(proc, 12)
	slices.Sort(got)
	if !slices.Equal(got, []int{7, 8}) {
		t.Fatalf("Keepers = %v, want [7 8] (argv[0] @ferry..., not self 12, not a non-numeric entry)", got)
	}
	if CheckVerb("poweroff") != nil || CheckVerb("rm -rf") == nil {
		t.Fatal("CheckVerb: want poweroff accepted and anything else refused")
	}
}

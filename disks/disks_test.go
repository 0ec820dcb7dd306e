package disks

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fakeSys lays out a /sys/block-like tree: name -> "MAJ:MIN", and
// partitions as "disk/part".
func fakeSys(t *testing.T, devs map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, dev := range devs {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "dev"), []byte(dev+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if filepath.Base(name) != name {
			if err := os.WriteFile(filepath.Join(dir, "partition"), []byte("1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestCandidatesSkipVirtualDevicesAndIncludePartitions(t *testing.T) {
	root := fakeSys(t, map[string]string{
		"sda": "8:0", "sda/sda1": "8:1", "sda/sda2": "8:2",
		"nvme0n1": "259:0", "nvme0n1/nvme0n1p1": "259:1",
		"loop0": "7:0", "ram0": "1:0", "zram0": "252:0", "nbd0": "43:0",
		"cciss!c0d0": "104:0", "cciss!c0d0/cciss!c0d0p1": "104:1",
	})
	// Not partitions: sysfs attribute directories of the disk.
	os.MkdirAll(filepath.Join(root, "sda", "queue"), 0o755)
	os.MkdirAll(filepath.Join(root, "sda", "sdafake"), 0o755) // no "partition" file

	got, err := Candidates(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{"cciss!c0d0", "104:0"}, {"cciss!c0d0p1", "104:1"},
		{"nvme0n1", "259:0"}, {"nvme0n1p1", "259:1"},
		{"sda", "8:0"}, {"sda1", "8:1"}, {"sda2", "8:2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Candidates = %v, want %v", got, want)
	}
	if n := got[1].Node("/dev"); n != "/dev/cciss/c0d0p1" {
		t.Errorf("Node of cciss!c0d0p1 = %s, want /dev/cciss/c0d0p1", n)
	}
}

func TestCandidatesFailsOnMissingSysfs(t *testing.T) {
	if _, err := Candidates(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("Candidates on a missing directory succeeded")
	}
}

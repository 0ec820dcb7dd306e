package kmod

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A's agent coldplugs from tree.Except(ESPModules()) before it loads ESP:
// a device's driver that needs part of ESP (here a CPU-feature crypto
// driver that is itself in the list, and a NIC whose offload needs it)
// must wait, while the plain NIC, its bus driver and tun load at once.
func TestExceptLeavesOutTheNamedAndWhatNeedsThem(t *testing.T) {
	dir := t.TempDir()
	for name, fields := range map[string][]string{
		"virtio_pci":   {"alias=pci:v00001AF4d*sv*sd*bc*sc*i*"},
		"failover":     nil,
		"virtio_net":   {"alias=virtio:d00000001v*", "depends=failover"},
		"cryptd":       nil,
		"aesni_intel":  {"alias=cpu:type:x86,ven*fam*mod*:feature:*0099*", "depends=cryptd"},
		"offload_nic":  {"alias=pci:v00008086d*sv*sd*bc02sc*i*", "depends=offload_core"},
		"offload_core": {"depends=aesni_intel"},
		"tun":          nil,
	} {
		os.WriteFile(filepath.Join(dir, name+".ko"), fakeModule(append([]string{"name=" + name}, fields...)...), 0o644)
	}
	tree, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	devices := []string{
		"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
		"virtio:d00000001v00001AF4",
		"cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0099,00E5",
		"pci:v00008086d000010FBsv00000000sd00000000bc02sc00i00",
	}
	all, err := tree.Resolve(devices, []string{"tun"})
	if err != nil || len(all) != 8 {
		t.Fatalf("full tree: %v %v, want all eight", names(all), err)
	}
	except := tree.Except([]string{"aesni-intel", "drbg"})
	got, err := except.Resolve(devices, []string{"tun", "offload_core"})
	want := []string{"failover", "virtio_net", "virtio_pci", "tun"}
	if err != nil || !slices.Equal(names(got), want) {
		t.Errorf("Except(aesni-intel, drbg).Resolve = %v %v, want %v", names(got), err, want)
	}
	for name, has := range map[string]bool{"aesni_intel": false, "offload_core": false, "offload_nic": false, "cryptd": true, "virtio_net": true} {
		if except.Has(name) != has {
			t.Errorf("Except(...).Has(%s) = %v, want %v", name, !has, has)
		}
	}
	// The tree it came from is unchanged.
	if again, _ := tree.Resolve(devices, nil); len(again) != 7 {
		t.Errorf("full tree after Except: %v", names(again))
	}
}

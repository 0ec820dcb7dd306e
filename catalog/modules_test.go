package catalog

import "testing"

// A kernel flavour without some of the NIC drivers the bundle names
// (Debian's cloud kernel has no e1000, igb ...) still gets its bundle:
// those are skipped; only the NFS client is required.
func TestPlanBundleSkipsNICDriversTheFlavourLacks(t *testing.T) {
	dir := modTree(t, t.TempDir(), testRelease, map[string]string{"virtio_net": "", "nfs": "", "nfsv4": "nfs", "tun": ""})
	bundle, _, err := planBundle(dir, testRelease, []string{"virtio_net", "e1000", "igb", "nfs", "nfsv4", "tun"}, nil, true)
	if err != nil || len(bundle) != 4 {
		t.Fatalf("planBundle = %d modules, %v; want virtio_net, nfs, nfsv4, tun and no error", len(bundle), err)
	}
	noNFS := modTree(t, t.TempDir(), testRelease, map[string]string{"virtio_net": ""})
	if _, _, err := planBundle(noNFS, testRelease, []string{"virtio_net", "nfs", "nfsv4"}, nil, true); err == nil {
		t.Fatal("a tree without the NFS client gave a bundle")
	}
}

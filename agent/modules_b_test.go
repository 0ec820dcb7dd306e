package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/kmod"
)

func TestOwnModuleDirPrefersMergedUsr(t *testing.T) {
	root := t.TempDir()
	if got := ownModuleDir(root, "6.12.0-1-cloud-amd64"); got != "" {
		t.Fatalf("empty root: %q", got)
	}
	os.MkdirAll(filepath.Join(root, "lib/modules/6.12.0-1-cloud-amd64"), 0o755)
	if got := ownModuleDir(root, "6.12.0-1-cloud-amd64"); got != filepath.Join(root, "lib/modules/6.12.0-1-cloud-amd64") {
		t.Errorf("got %q", got)
	}
	os.MkdirAll(filepath.Join(root, "usr/lib/modules/6.12.0-1-cloud-amd64"), 0o755)
	if got := ownModuleDir(root, "6.12.0-1-cloud-amd64"); got != filepath.Join(root, "usr/lib/modules/6.12.0-1-cloud-amd64") {
		t.Errorf("got %q", got)
	}
	if got := ownModuleDir(root, "6.1.0-57-amd64"); got != "" {
		t.Errorf("other release: %q", got)
	}
}

func TestFirmwareDirSetOnlyWhenOnlyUsrHasIt(t *testing.T) {
	root := t.TempDir()
	param := filepath.Join(root, "sys/module/firmware_class/parameters/path")
	os.MkdirAll(filepath.Dir(param), 0o755)
	os.WriteFile(param, nil, 0o644)
	os.MkdirAll(filepath.Join(root, "usr/lib/firmware"), 0o755)
	useFirmwareDir(root, slog.New(slog.DiscardHandler))
	if b, _ := os.ReadFile(param); string(b) != "/usr/lib/firmware" {
		t.Fatalf("path = %q", b)
	}
	os.WriteFile(param, nil, 0o644)
	os.MkdirAll(filepath.Join(root, "lib/firmware"), 0o755)
	useFirmwareDir(root, slog.New(slog.DiscardHandler))
	if b, _ := os.ReadFile(param); string(b) != "" {
		t.Fatalf("path set although /lib/firmware exists: %q", b)
	}
}

// Only the NFS version the root is mounted with loads: nfsroot.MountOptions
// mounts "3" as NFSv3 and every other version as NFSv4.
func TestNFSClientModulesFollowTheRootsVersion(t *testing.T) {
	for v, want := range map[string]string{
		"":    "af_packet sunrpc nfs nfsv4 tcp_diag",
		"4.1": "af_packet sunrpc nfs nfsv4 tcp_diag",
		"4.2": "af_packet sunrpc nfs nfsv4 tcp_diag",
		"3":   "af_packet sunrpc nfs nfsv3 tcp_diag",
	} {
		if got := strings.Join(nfsClientModules(v), " "); got != want {
			t.Errorf("version %q: %s, want %s", v, got, want)
		}
	}
}

// Carried modules that are the NFS client, or need it even through
// another carried module, wait for the background load; the rest (tun,
// the NIC) load at once, in their order.
func TestSplitAfterDefersWhatNeedsTheNFSClient(t *testing.T) {
	mod := func(name string, deps ...string) kmod.Module { return kmod.Module{Name: name, Depends: deps} }
	carried := []kmod.Module{
		mod("virtio_net", "net_failover"), mod("sunrpc"), mod("tun"), mod("auth_rpcgss", "sunrpc"),
		mod("rpcsec_gss_krb5", "auth_rpcgss"), mod("nfs", "sunrpc"), mod("xfrm_interface"),
	}
	first := []kmod.Module{mod("sunrpc"), mod("nfs", "sunrpc"), mod("nfsv4", "nfs")}
	now, after := splitAfter(carried, first)
	names := func(ms []kmod.Module) string {
		var s []string
		for _, m := range ms {
			s = append(s, m.Name)
		}
		return strings.Join(s, " ")
	}
	if got, want := names(now), "virtio_net tun xfrm_interface"; got != want {
		t.Errorf("now: %s, want %s", got, want)
	}
	if got, want := names(after), "auth_rpcgss rpcsec_gss_krb5"; got != want {
		t.Errorf("after: %s, want %s", got, want)
	}
}

// A phase that waits for background work gets its error, or its own
// context's when that ends first (the agent then stops anyway).
func TestBackgroundWaitGivesTheWorksError(t *testing.T) {
	boom := errors.New("module nfsv4 failed")
	if err := startBackground(func() error { return boom }).wait(context.Background()); !errors.Is(err, boom) {
		t.Errorf("wait = %v, want %v", err, boom)
	}
	release := make(chan struct{})
	defer close(release)
	b := startBackground(func() error { <-release; return nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("wait with a cancelled context = %v, want context.Canceled", err)
	}
}

package kmod

import (
	"reflect"
	"strings"
	"testing"
)

func TestResolveAvailableSkipsAbsentModulesButNotAbsentDependencies(t *testing.T) {
	dir := tree(t)
	mods, missing, err := ResolveAvailable(dir, []string{"virtio_blk", "esp4", "virtio_net"})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(mods); !reflect.DeepEqual(got, []string{"virtio", "virtio_ring", "virtio_blk", "failover", "net-failover", "virtio_net"}) {
		t.Fatalf("modules %v", got)
	}
	if !reflect.DeepEqual(missing, []string{"esp4"}) {
		t.Fatalf("missing %v, want [esp4]", missing)
	}
	writeModule(t, dir, "kernel/net/ipv4/esp4.ko", "esp4", "xfrm_algo")
	_, _, err = ResolveAvailable(dir, []string{"esp4"})
	if err == nil || !strings.Contains(err.Error(), `"xfrm_algo" (needed by "esp4") not found`) {
		t.Fatalf("err = %v, want the missing dependency named", err)
	}
}

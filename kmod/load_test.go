package kmod

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// fakeKernel records finit calls and fails the modules it is told to.
type fakeKernel struct {
	calls   []string
	fail    map[string]error
	already map[string]bool
}

func (k *fakeKernel) loader() Loader {
	return Loader{
		finit: func(p string) (bool, error) {
			name := strings.TrimSuffix(filepath.Base(p), ".ko")
			k.calls = append(k.calls, name)
			return k.already[name], k.fail[name]
		},
		release: func() (string, error) { return "6.1.0-99-amd64", nil },
	}
}

func TestLoadAllLoadsEveryModuleDependenciesFirst(t *testing.T) {
	k := &fakeKernel{already: map[string]bool{"virtio": true}}
	loaded, err := k.loader().LoadAll(context.Background(), tree(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"failover", "net-failover", "virtio", "virtio_ring", "virtio_blk", "virtio_net"}
	if !reflect.DeepEqual(k.calls, want) || !reflect.DeepEqual(loaded, want) {
		t.Fatalf("calls %v loaded %v, want %v", k.calls, loaded, want)
	}
}

func TestLoadAllSkipsDependentsOfFailedModuleAndGoesOn(t *testing.T) {
	k := &fakeKernel{fail: map[string]error{"failover": syscall.ENOEXEC}}
	loaded, err := k.loader().LoadAll(context.Background(), tree(t))
	if !reflect.DeepEqual(loaded, []string{"virtio", "virtio_ring", "virtio_blk"}) {
		t.Errorf("loaded %v", loaded)
	}
	var le *LoadError
	if !errors.As(err, &le) || le.Module != "failover" || !errors.Is(err, syscall.ENOEXEC) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{
		"module failover (", "module built for 6.1.0-48-amd64, kernel is 6.1.0-99-amd64",
		"module net-failover (", "not loaded: dependency failover failed",
		"module virtio_net (", "not loaded: dependency net_failover failed",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestLoadAllStopsAtFirstFailureWhenAsked(t *testing.T) {
	k := &fakeKernel{fail: map[string]error{"failover": syscall.EINVAL}}
	l := k.loader()
	l.StopOnError = true
	loaded, err := l.LoadAll(context.Background(), tree(t))
	if err == nil || len(loaded) != 0 || !reflect.DeepEqual(k.calls, []string{"failover"}) {
		t.Fatalf("loaded %v calls %v err %v", loaded, k.calls, err)
	}
}

func TestLoadAllReportsMissingDependencyAndLoadsTheRest(t *testing.T) {
	dir := tree(t)
	writeModule(t, dir, "extra/orphan.ko", "orphan", "gone")
	k := &fakeKernel{}
	loaded, err := k.loader().LoadAll(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), `module "gone" (needed by "orphan") not found`) {
		t.Fatalf("got %v", err)
	}
	if len(loaded) != 6 {
		t.Errorf("loaded %v", loaded)
	}
}

func TestLoadStopsWhenContextIsCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k := &fakeKernel{}
	_, err := k.loader().LoadAll(ctx, tree(t))
	if !errors.Is(err, context.Canceled) || len(k.calls) != 0 {
		t.Fatalf("calls %v err %v", k.calls, err)
	}
}

func TestLoadLoadsResolvedModulesInOrder(t *testing.T) {
	dir := tree(t)
	mods, err := Resolve(dir, []string{"virtio_blk"})
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKernel{}
	loaded, err := k.loader().Load(context.Background(), mods)
	if err != nil || !reflect.DeepEqual(loaded, []string{"virtio", "virtio_ring", "virtio_blk"}) {
		t.Fatalf("loaded %v err %v", loaded, err)
	}
}

func TestLoadSkipsLiveModulesWithoutFinit(t *testing.T) {
	k := &fakeKernel{}
	l := k.loader()
	l.live = func(name string) bool { return name == "virtio" || name == "virtio_ring" }
	loaded, err := l.LoadAll(context.Background(), tree(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"failover", "net-failover", "virtio_blk", "virtio_net"}; !reflect.DeepEqual(k.calls, want) {
		t.Errorf("finit calls %v, want %v (live modules skipped)", k.calls, want)
	}
	if want := []string{"failover", "net-failover", "virtio", "virtio_ring", "virtio_blk", "virtio_net"}; !reflect.DeepEqual(loaded, want) {
		t.Errorf("loaded %v, want %v (live modules count as loaded)", loaded, want)
	}
}

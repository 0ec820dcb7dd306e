package kmod

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// B's agent resolves from one tree on two goroutines at once (the NFS
// client in the background, ESP and the devices' drivers in the phase),
// and A's resolves from a tree and its Except beside each other. The
// lazily read .modinfo cache is shared: unguarded, two first reads at
// once are concurrent map writes, which end the process with exit 2
// (init, in B: a kernel panic). Run with -race too.
func TestTreeResolvesFromManyGoroutines(t *testing.T) {
	dir := t.TempDir()
	const n = 200
	var all []string
	for i := range n {
		name := fmt.Sprintf("m%03d", i)
		fields := []string{"name=" + name, fmt.Sprintf("alias=pci:v%08Xd*", i)}
		if i > 0 {
			fields = append(fields, fmt.Sprintf("depends=m%03d", i-1))
		}
		if err := os.WriteFile(filepath.Join(dir, name+".ko"), fakeModule(fields...), 0o644); err != nil {
			t.Fatal(err)
		}
		all = append(all, name)
	}
	tree, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	except := tree.Except([]string{"m100"})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			// Each goroutine walks the names in its own order, so first
			// reads of one module meet on different goroutines.
			names := make([]string, 0, n)
			for i := range n {
				names = append(names, all[(i*(g+1)+g)%n])
			}
			var got []Module
			var err error
			switch g % 3 {
			case 0:
				got, err = tree.Resolve(nil, names)
			case 1:
				got, _, err = tree.ResolveAvailable(names)
			default:
				got, err = except.Resolve([]string{"pci:v00000005d00000001"}, names)
			}
			if err != nil {
				errs <- err
				return
			}
			want := n
			if g%3 == 2 {
				want = 100 // m100 and all that need it left out
			}
			if len(got) != want {
				errs <- fmt.Errorf("goroutine %d: %d modules, want %d", g, len(got), want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

package agent

import (
	"context"
	"errors"
	"testing"
)

// tunnel-a and the jump wait for the modules A loads in the background;
// a boot that never started any (no module tree) must not block, and a
// cancelled boot must not hang on a load that never ends.
func TestWaitModules(t *testing.T) {
	a := &Agent{}
	if err := a.waitModules(context.Background()); err != nil {
		t.Fatalf("nothing loading: %v", err)
	}
	loading := make(chan struct{})
	a.espLoad = &background{done: loading}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.waitModules(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("still loading, boot cancelled: %v, want context.Canceled", err)
	}
	close(loading)
	if err := a.waitModules(context.Background()); err != nil {
		t.Fatalf("loaded: %v", err)
	}
}

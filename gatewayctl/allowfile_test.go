package gatewayctl

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/ipsec/authz"
)

func pin(n int) string { return fmt.Sprintf("%064x", n) }

func newAllow(t *testing.T) *AllowFile {
	return NewAllowFile(filepath.Join(t.TempDir(), "allow.jsonl"), nil)
}

func TestAllowFileIsReadByTheGateway(t *testing.T) {
	ctx := context.Background()
	a := newAllow(t)
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if err := a.Add(ctx, Entry{Pin: pin(1), Lease: "l1", Expires: &exp}, Entry{Pin: pin(2), Lease: "l1"}); err != nil {
		t.Fatal(err)
	}
	gw := authz.New(slog.New(slog.DiscardHandler), nil)
	if err := gw.Load(ctx, a.Path); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{pin(1), pin(2)} {
		if e, err := gw.Allow(p); err != nil || e.Lease != "l1" {
			t.Errorf("gateway: Allow(%s) = %+v, %v", p, e, err)
		}
	}
}

func TestRemoveLeaseTakesOnlyItsKeys(t *testing.T) {
	ctx := context.Background()
	a := newAllow(t)
	a.Add(ctx, Entry{Pin: pin(1), Lease: "l1"}, Entry{Pin: pin(2), Lease: "l2"}, Entry{Pin: pin(3), Lease: "l1"})
	n, err := a.RemoveLease(ctx, "l1")
	if err != nil || n != 2 {
		t.Fatalf("RemoveLease = %d, %v; want 2", n, err)
	}
	got, _ := a.Entries(ctx)
	if len(got) != 1 || got[0].Pin != pin(2) {
		t.Errorf("left %+v, want only l2's key", got)
	}
	if n, _ := a.Remove(ctx, pin(2), pin(9)); n != 1 {
		t.Errorf("Remove counted %d, want 1", n)
	}
}

func TestAddReplacesEntryWithSamePin(t *testing.T) {
	ctx := context.Background()
	a := newAllow(t)
	a.Add(ctx, Entry{Pin: pin(1), Lease: "old"})
	a.Add(ctx, Entry{Pin: pin(1), Lease: "new"})
	got, _ := a.Entries(ctx)
	if len(got) != 1 || got[0].Lease != "new" {
		t.Errorf("entries %+v, want one for lease new", got)
	}
}

func TestConcurrentEditorsLoseNoKeys(t *testing.T) {
	ctx := context.Background()
	a := newAllow(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			other := NewAllowFile(a.Path, nil)
			if err := other.Add(ctx, Entry{Pin: pin(i), Lease: "l"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got, _ := a.Entries(ctx); len(got) != 20 {
		t.Errorf("%d entries after 20 concurrent adds", len(got))
	}
}

func TestAddRefusesBadPinAndKeepsFile(t *testing.T) {
	ctx := context.Background()
	a := newAllow(t)
	a.Add(ctx, Entry{Pin: pin(1), Lease: "l1"})
	before, _ := os.ReadFile(a.Path)
	err := a.Add(ctx, Entry{Pin: "c2hvcnQ=", Lease: "l2"})
	if err == nil || !strings.Contains(err.Error(), "c2hvcnQ=") {
		t.Fatalf("err = %v, want a refusal naming the pin", err)
	}
	after, _ := os.ReadFile(a.Path)
	if string(before) != string(after) {
		t.Error("file changed by a refused add")
	}
}

func TestCorruptListIsNotOverwritten(t *testing.T) {
	ctx := context.Background()
	a := newAllow(t)
	os.WriteFile(a.Path, []byte("{\"pin\":\"zz\"}\n"), 0o644)
	if err := a.Add(ctx, Entry{Pin: pin(1)}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("err = %v, want a refusal naming line 1", err)
	}
	if data, _ := os.ReadFile(a.Path); string(data) != "{\"pin\":\"zz\"}\n" {
		t.Errorf("corrupt file rewritten: %q", data)
	}
}

package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type revokes struct {
	mu   sync.Mutex
	pins []string
}

func (r *revokes) Revoke(_ context.Context, pin, _ string) {
	r.mu.Lock()
	r.pins = append(r.pins, pin)
	r.mu.Unlock()
}

func (r *revokes) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.pins...)
}

func pin(n int) string { return fmt.Sprintf("%064x", n) }

func TestAllowRefusesUnlistedKey(t *testing.T) {
	l := New(slog.New(slog.DiscardHandler), nil)
	if err := l.Add(Entry{Pin: pin(1), Lease: "l1"}); err != nil {
		t.Fatal(err)
	}
	if e, err := l.Allow(pin(1)); err != nil || e.Lease != "l1" {
		t.Fatalf("listed key: %v %v", e, err)
	}
	if _, err := l.Allow(pin(2)); !errors.Is(err, ErrNotListed) {
		t.Fatalf("unlisted key: err = %v", err)
	}
}

func TestAllowRefusesExpiredEntry(t *testing.T) {
	l := New(slog.New(slog.DiscardHandler), nil)
	past := time.Now().Add(-time.Second)
	l.Add(Entry{Pin: pin(1), Lease: "l1", Expires: &past})
	if _, err := l.Allow(pin(1)); !errors.Is(err, ErrExpired) {
		t.Fatalf("err = %v, want ErrExpired", err)
	}
}

func TestRemoveTearsDownPeer(t *testing.T) {
	r := &revokes{}
	l := New(slog.New(slog.DiscardHandler), r)
	l.Add(Entry{Pin: pin(1), Lease: "l1"})
	if !l.Remove(context.Background(), pin(1)) {
		t.Fatal("Remove said the pin was absent")
	}
	if got := r.got(); len(got) != 1 || got[0] != pin(1) {
		t.Fatalf("revoked %v, want [%s]", got, pin(1))
	}
	if _, err := l.Allow(pin(1)); err == nil {
		t.Fatal("removed key still allowed")
	}
}

func TestFileReloadRevokesDroppedKeys(t *testing.T) {
	r := &revokes{}
	l := New(slog.New(slog.DiscardHandler), r)
	path := filepath.Join(t.TempDir(), "allow.jsonl")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf("# leases\n{\"pin\":%q,\"lease\":\"a\"}\n{\"pin\":%q,\"lease\":\"b\"}\n", pin(1), pin(2)))
	if err := l.Load(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Watch(ctx, path, 10*time.Millisecond)
	write(fmt.Sprintf("{\"pin\":%q,\"lease\":\"b\"}\n", pin(2)))
	deadline := time.Now().Add(5 * time.Second)
	for len(r.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.got(); len(got) != 1 || got[0] != pin(1) {
		t.Fatalf("revoked %v after the file dropped lease a", got)
	}
	if _, err := l.Allow(pin(2)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadKeepsListOnBadFile(t *testing.T) {
	l := New(slog.New(slog.DiscardHandler), nil)
	l.Add(Entry{Pin: pin(1), Lease: "a"})
	path := filepath.Join(t.TempDir(), "allow.jsonl")
	os.WriteFile(path, []byte(fmt.Sprintf("{\"pin\":%q}\n{\"pin\":\"short\"}\n", pin(3))), 0o644)
	err := l.Load(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want a refusal naming line 2", err)
	}
	if _, err := l.Allow(pin(1)); err != nil {
		t.Fatal("previous list lost after a bad file")
	}
}

func TestParseRefusesUnknownField(t *testing.T) {
	_, err := Parse(strings.NewReader(fmt.Sprintf("{\"pin\":%q,\"leas\":\"x\"}\n", pin(1))))
	if err == nil {
		t.Fatal("misspelt field accepted")
	}
}

func TestVirtualIPIsOneKeysOnly(t *testing.T) {
	_, err := Parse(strings.NewReader(fmt.Sprintf("{\"pin\":%q,\"virtual_ip\":\"10.8.1.5\"}\n{\"pin\":%q,\"virtual_ip\":\"10.8.1.5\"}\n", pin(1), pin(2))))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "10.8.1.5") {
		t.Fatalf("two keys with one virtual_ip: err = %v, want a refusal of line 2 naming the address", err)
	}
	for _, bad := range []string{"fe80::1", "0.0.0.0", "224.0.0.1", "10.8.1"} {
		if _, err := Parse(strings.NewReader(fmt.Sprintf("{\"pin\":%q,\"virtual_ip\":%q}\n", pin(1), bad))); err == nil {
			t.Errorf("virtual_ip %q accepted", bad)
		}
	}
	es, err := Parse(strings.NewReader(fmt.Sprintf("{\"pin\":%q,\"virtual_ip\":\"10.8.1.5\"}\n", pin(1))))
	if err != nil || es[0].VirtualIP.String() != "10.8.1.5" {
		t.Fatalf("Parse = %v, %v", es, err)
	}
	l := New(slog.New(slog.DiscardHandler), nil)
	if err := l.Add(es[0]); err != nil {
		t.Fatal(err)
	}
	if err := l.Add(Entry{Pin: pin(2), VirtualIP: es[0].VirtualIP}); err == nil {
		t.Fatal("Add gave a second key the address of the first")
	}
	if e, err := l.Allow(pin(1)); err != nil || e.VirtualIP != es[0].VirtualIP {
		t.Fatalf("Allow = %+v, %v", e, err)
	}
}

package authz

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A key written into the allow list is allowed as soon as the file is
// replaced, not at the next periodic check (an hour here): the borrower
// replaces it by rename, while the key's server retries IKE.
func TestWatchLoadsAReplacedFileAtOnce(t *testing.T) {
	l := New(slog.New(slog.DiscardHandler), nil)
	dir := t.TempDir()
	path := filepath.Join(dir, "allow.jsonl")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Watch(ctx, path, time.Hour)
	time.Sleep(100 * time.Millisecond) // Watch's first load and inotify are in place
	// Another file of the directory changing is no reason to reload.
	os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o644)
	tmp := filepath.Join(dir, ".allow.tmp")
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("{\"pin\":%q,\"lease\":\"a\"}\n", pin(1))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := l.Allow(pin(1)); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("key not allowed 10 s after the file was replaced (checked hourly otherwise): %v", err)
		}
	}
}

package authz

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// inotifyEvent is one event as the kernel writes it, name NUL-padded.
func inotifyEvent(mask uint32, name string) []byte {
	n := (len(name) + 1 + 15) / 16 * 16
	b := make([]byte, unix.SizeofInotifyEvent+n)
	binary.NativeEndian.PutUint32(b[4:], mask)
	binary.NativeEndian.PutUint32(b[12:], uint32(n))
	copy(b[unix.SizeofInotifyEvent:], name)
	return b
}

// Only events naming the list count; a rename onto it needs no second
// read, a write in place (or lost events) does.
func TestNamesFileTellsARenameFromAWriteInPlace(t *testing.T) {
	for _, c := range []struct {
		what           string
		buf            []byte
		named, inPlace bool
	}{
		{"another file written", inotifyEvent(unix.IN_CLOSE_WRITE, "allow.jsonl.tmp"), false, false},
		{"renamed onto the list", append(inotifyEvent(unix.IN_CREATE, ".tmp1"), inotifyEvent(unix.IN_MOVED_TO, "allow.jsonl")...), true, false},
		{"written in place", inotifyEvent(unix.IN_CLOSE_WRITE, "allow.jsonl"), true, true},
		{"renamed, then written in place", append(inotifyEvent(unix.IN_MOVED_TO, "allow.jsonl"), inotifyEvent(unix.IN_CLOSE_WRITE, "allow.jsonl")...), true, true},
		{"events lost", inotifyEvent(unix.IN_Q_OVERFLOW, ""), true, true},
	} {
		if named, inPlace := namesFile(c.buf, "allow.jsonl"); named != c.named || inPlace != c.inPlace {
			t.Errorf("%s: named %v, in place %v; want %v, %v", c.what, named, inPlace, c.named, c.inPlace)
		}
	}
}

package gatewayctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"

	"ferry/internal/atomicfile"
	"ferry/ipsec/authz"
)

// Entry is one allowed key: the same type, and so the same JSON line, that
// ferry's gateway reads ({"pin": hex SHA-256 of the SPKI, "lease": ID,
// "expires": RFC 3339}).
type Entry = authz.Entry

// AllowFile edits ferry gateway's allow list file. Every change takes an
// exclusive lock on Path+".lock", reads and checks the whole file, and
// replaces it atomically, so the gateway never reads half a list and
// concurrent editors do not lose each other's changes.
type AllowFile struct {
	Path string
	Log  *slog.Logger
}

// NewAllowFile returns an editor for the list at path.
func NewAllowFile(path string, log *slog.Logger) *AllowFile {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &AllowFile{Path: path, Log: log}
}

// Entries reads the list; a missing file is an empty list.
func (a *AllowFile) Entries(ctx context.Context) ([]Entry, error) {
	var out []Entry
	err := a.locked(ctx, func(cur []Entry) ([]Entry, bool, error) {
		out = cur
		return nil, false, nil
	})
	return out, err
}

// Add puts entries on the list, replacing those with the same pins.
func (a *AllowFile) Add(ctx context.Context, entries ...Entry) error {
	return a.locked(ctx, func(cur []Entry) ([]Entry, bool, error) {
		byPin := map[string]int{}
		for i, e := range cur {
			byPin[e.Pin] = i
		}
		for _, e := range entries {
			if _, err := authz.Parse(bytes.NewReader(line(e))); err != nil {
				return nil, false, fmt.Errorf("allow list %s: add pin %.80q: %w", a.Path, e.Pin, err)
			}
			if i, ok := byPin[e.Pin]; ok {
				cur[i] = e
				continue
			}
			byPin[e.Pin] = len(cur)
			cur = append(cur, e)
		}
		a.Log.Info("gateway keys allowed", "path", a.Path, "added", len(entries), "entries", len(cur))
		return cur, true, nil
	})
}

// Remove takes the given pins off the list and returns how many were on it.
func (a *AllowFile) Remove(ctx context.Context, pins ...string) (int, error) {
	drop := map[string]bool{}
	for _, p := range pins {
		drop[p] = true
	}
	return a.removeIf(ctx, func(e Entry) bool { return drop[e.Pin] })
}

// RemoveLease takes every key of lease off the list.
func (a *AllowFile) RemoveLease(ctx context.Context, lease string) (int, error) {
	return a.removeIf(ctx, func(e Entry) bool { return e.Lease == lease })
}

func (a *AllowFile) removeIf(ctx context.Context, drop func(Entry) bool) (int, error) {
	n := 0
	err := a.locked(ctx, func(cur []Entry) ([]Entry, bool, error) {
		keep := cur[:0]
		for _, e := range cur {
			if drop(e) {
				n++
				continue
			}
			keep = append(keep, e)
		}
		a.Log.Info("gateway keys removed", "path", a.Path, "removed", n, "entries", len(keep))
		return keep, n > 0, nil
	})
	return n, err
}

// locked runs edit on the current entries under the lock and writes what
// it returns when it says so.
func (a *AllowFile) locked(ctx context.Context, edit func([]Entry) ([]Entry, bool, error)) error {
	unlock, err := lockFile(ctx, a.Path+".lock")
	if err != nil {
		return fmt.Errorf("allow list %s: %w", a.Path, err)
	}
	defer unlock()
	cur, err := readAllowFile(a.Path)
	if err != nil {
		return err
	}
	next, write, err := edit(cur)
	if err != nil || !write {
		return err
	}
	return writeAllowFile(a.Path, next)
}

func readAllowFile(p string) ([]Entry, error) {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("allow list: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, authz.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("allow list %s: %w", p, err)
	}
	if len(data) > authz.MaxFileSize {
		return nil, fmt.Errorf("allow list %s: over %d bytes", p, authz.MaxFileSize)
	}
	entries, err := authz.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("allow list %s: %w", p, err)
	}
	return entries, nil
}

// writeAllowFile replaces p with entries, sorted by lease then pin, through
// a synced temporary file in the same directory.
func writeAllowFile(p string, entries []Entry) error {
	sort.SliceStable(entries, func(i, j int) bool {
		if entries[i].Lease != entries[j].Lease {
			return entries[i].Lease < entries[j].Lease
		}
		return entries[i].Pin < entries[j].Pin
	})
	var buf bytes.Buffer
	buf.WriteString("# ferry gateway allow list: one JSON object a line; written by ferry borrower\n")
	for _, e := range entries {
		buf.Write(line(e))
	}
	if err := atomicfile.Write(p, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("allow list %s: write: %w", p, err)
	}
	return nil
}

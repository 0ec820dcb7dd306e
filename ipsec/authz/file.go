package authz

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync/atomic"
	"time"
)

// Bounds on the allow list file, which may be written by another program.
const (
	settle      = 50 * time.Millisecond
	MaxFileSize = 16 << 20
	MaxLine     = 4096
	MaxEntries  = 100000
)

func (e Entry) validate() error {
	if len(e.Pin) != 64 {
		return fmt.Errorf("authz: pin %q is %d characters, want 64 hex digits (SHA-256)", e.Pin, len(e.Pin))
	}
	if _, err := hex.DecodeString(e.Pin); err != nil {
		return fmt.Errorf("authz: pin %q is not hex: %w", e.Pin, err)
	}
	if e.VirtualIP.IsValid() && (!e.VirtualIP.Is4() || e.VirtualIP.IsUnspecified() || e.VirtualIP.IsMulticast()) {
		return fmt.Errorf("authz: virtual_ip %s for pin %s: want a unicast IPv4 address", e.VirtualIP, e.Pin)
	}
	if len(e.Lease) > 256 {
		return fmt.Errorf("authz: lease id for pin %s is %d bytes, over 256", e.Pin, len(e.Lease))
	}
	return nil
}

// Parse reads JSON lines ({"pin":..., "lease":..., "expires":RFC3339});
// blank lines and lines starting with '#' are skipped. Any bad line fails
// the whole file, so a half-written list never replaces a good one.
func Parse(r io.Reader) ([]Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), MaxLine)
	var out []Entry
	vips := map[netip.Addr]string{}
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if len(out) == MaxEntries {
			return nil, fmt.Errorf("authz: line %d: more than %d entries", n, MaxEntries)
		}
		var e Entry
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("authz: line %d: %w", n, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("authz: line %d: more than one JSON value", n)
		}
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("authz: line %d: %w", n, err)
		}
		if other, ok := vips[e.VirtualIP]; ok && e.VirtualIP.IsValid() && other != e.Pin {
			return nil, fmt.Errorf("authz: line %d: virtual_ip %s of pin %s is already pin %s's: one address, one key", n, e.VirtualIP, e.Pin, other)
		}
		vips[e.VirtualIP] = e.Pin
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("authz: after %d entries: %w (lines are limited to %d bytes)", len(out), err, MaxLine)
	}
	return out, nil
}

// Load replaces the list with the file at path. On error the list is
// unchanged.
func (l *List) Load(ctx context.Context, path string) error {
	h, err := l.loadIfChanged(ctx, path, "", settle)
	if err == nil {
		l.mu.Lock()
		l.loaded = h
		l.mu.Unlock()
	}
	return err
}

// loadIfChanged loads path unless its content hashes to prev. A change
// is applied only if a second read wait later agrees (wait 0: the file
// was renamed into place, hence whole).
func (l *List) loadIfChanged(ctx context.Context, path, prev string, wait time.Duration) (string, error) {
	data, err := readBounded(path)
	if err != nil {
		return prev, err
	}
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	if h == prev {
		return prev, nil
	}
	// A writer that truncates and rewrites in place (not rename) can be
	// caught half way, and an empty or cut list would revoke every lease:
	// apply a change only once two reads a moment apart agree. A file
	// renamed into place was whole when it appeared (the borrower writes
	// it so): no wait, the key's server may be retrying IKE.
	if wait > 0 {
		time.Sleep(wait)
		again, err := readBounded(path)
		if err != nil {
			return prev, err
		}
		if !bytes.Equal(again, data) {
			return prev, nil // still changing: the next check takes it
		}
	}
	entries, err := Parse(bytes.NewReader(data))
	if err != nil {
		return prev, fmt.Errorf("%s: %w", path, err)
	}
	l.Replace(ctx, entries)
	l.log.Info("authz: allow list loaded", "path", path, "entries", len(entries))
	return h, nil
}

// Watch reloads path whenever its content changes and expires entries,
// checking every interval and, where inotify tells of a write or a
// rename onto path, at once (the borrower adds a key while the server
// it belongs to retries IKE: a 2 s interval alone kept it waiting about
// a second), until ctx ends. A bad file is logged once per change and
// the previous list kept.
func (l *List) Watch(ctx context.Context, path string, interval time.Duration) {
	changes, err := fileChanges(ctx, path)
	if err != nil {
		l.log.Warn("authz: allow list checked every interval only", "path", path, "interval", interval, "err", err)
	}
	l.mu.Lock()
	prev := l.loaded // a Load just before Watch need not be repeated
	l.mu.Unlock()
	prev, err = l.loadIfChanged(ctx, path, prev, settle)
	lastErr := ""
	report := func(err error) {
		if err != nil && err.Error() != lastErr {
			l.log.Warn("authz: allow list not loaded, keeping the previous one", "err", err)
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
	}
	report(err)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes.signal(): // nil without inotify: never
			wait := time.Duration(0)
			if changes.inPlace.Swap(false) {
				wait = settle
			}
			prev, err = l.loadIfChanged(ctx, path, prev, wait)
			report(err)
			continue
		case <-t.C:
		}
		prev, err = l.loadIfChanged(ctx, path, prev, settle)
		report(err)
		l.ExpireNow(ctx)
	}
}

// changes are fileChanges' signals: c says the file changed since the
// last signal, inPlace whether it was written in place since then (or
// events were lost), rather than only renamed onto.
type changes struct {
	c       chan struct{}
	inPlace atomic.Bool
}

// signal is c, nil (never ready) for no changes at all.
func (c *changes) signal() <-chan struct{} {
	if c == nil {
		return nil
	}
	return c.c
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("authz: read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("authz: %s is over %d bytes", path, MaxFileSize)
	}
	return data, nil
}

// Package authz is the IPsec gateway's authorisation hook: the allow list
// of public keys that may open a tunnel, one per lease.
//
// A peer is accepted only if its certificate chains to the configured CA
// (checked by pki.Verifier) AND the SHA-256 pin of its public key is on
// this list and not expired. The list comes from a file of JSON lines,
// reloaded when it changes (Watch) or on SIGHUP (the applet calls Load),
// and from API calls (Add, Remove) for the borrower manager. Whenever a
// pin leaves the list, for any reason, the Revoker is told so that the
// daemon tears down that peer's SAs.
package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Reasons a peer is refused.
var (
	ErrNotListed = errors.New("public key not on the allow list")
	ErrExpired   = errors.New("allow list entry expired")
)

// Entry allows one public key for one lease.
type Entry struct {
	Pin     string     `json:"pin"`               // hex SHA-256 of the SPKI (pki.Pin)
	Lease   string     `json:"lease"`             // lease id, for logs and status
	Expires *time.Time `json:"expires,omitempty"` // nil: until removed
	// VirtualIP, when set, is the only inner address the key gets: the
	// borrower restricts the server's NFS export to it, so it must not
	// change across reconnects nor go to another key. Unset: any address
	// of the pool.
	VirtualIP netip.Addr `json:"virtual_ip,omitzero"`
}

// Revoker tears down the SAs of a peer whose key left the allow list; the
// IKE daemon implements it.
type Revoker interface {
	Revoke(ctx context.Context, pin, reason string)
}

// List is the current allow list. It is safe for concurrent use.
type List struct {
	mu      sync.Mutex
	entries map[string]Entry
	revoker Revoker
	log     *slog.Logger
	now     func() time.Time
	loaded  string // hash of the file content Load last applied
	// crl is the CA's revocation list (nil: none loaded); serials maps
	// the serial of each certificate AllowCert let in to its key's pin.
	crl     *crl
	serials map[string]string
}

// New makes an empty list. revoker may be nil until SetRevoker.
func New(log *slog.Logger, revoker Revoker) *List {
	return &List{entries: map[string]Entry{}, revoker: revoker, log: log, now: time.Now}
}

// SetRevoker sets who is told about removed keys (the daemon is made
// after the list it consults).
func (l *List) SetRevoker(r Revoker) {
	l.mu.Lock()
	l.revoker = r
	l.mu.Unlock()
}

// Allow returns the entry for pin, or why the key is refused.
func (l *List) Allow(pin string) (Entry, error) {
	l.mu.Lock()
	e, ok := l.entries[pin]
	now := l.now()
	l.mu.Unlock()
	if !ok {
		return Entry{}, fmt.Errorf("authz: pin %s: %w", pin, ErrNotListed)
	}
	if e.Expires != nil && !now.Before(*e.Expires) {
		return Entry{}, fmt.Errorf("authz: pin %s (lease %s) at %s: %w", pin, e.Lease, e.Expires.UTC().Format(time.RFC3339), ErrExpired)
	}
	return e, nil
}

// Add puts e on the list, replacing an entry with the same pin.
func (l *List) Add(e Entry) error {
	if err := e.validate(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.VirtualIP.IsValid() {
		for _, o := range l.entries {
			if o.VirtualIP == e.VirtualIP && o.Pin != e.Pin {
				return fmt.Errorf("authz: virtual_ip %s of pin %s is already pin %s's: one address, one key", e.VirtualIP, e.Pin, o.Pin)
			}
		}
	}
	l.entries[e.Pin] = e
	l.log.Info("authz: key allowed", "pin", e.Pin, "lease", e.Lease, "virtual_ip", e.VirtualIP)
	return nil
}

// Remove takes pin off the list and tears down its SAs; it reports
// whether the pin was there.
func (l *List) Remove(ctx context.Context, pin string) bool {
	l.mu.Lock()
	e, ok := l.entries[pin]
	delete(l.entries, pin)
	r := l.revoker
	l.mu.Unlock()
	if ok {
		l.revoked(ctx, r, e, "removed from allow list")
	}
	return ok
}

// Replace makes entries the whole list (a file reload); keys that left it
// are revoked.
func (l *List) Replace(ctx context.Context, entries []Entry) {
	next := make(map[string]Entry, len(entries))
	for _, e := range entries {
		next[e.Pin] = e
	}
	l.mu.Lock()
	var gone []Entry
	for pin, e := range l.entries {
		if _, ok := next[pin]; !ok {
			gone = append(gone, e)
		}
	}
	l.entries = next
	r := l.revoker
	l.mu.Unlock()
	for _, e := range gone {
		l.revoked(ctx, r, e, "no longer in allow list file")
	}
}

// ExpireNow removes entries whose expiry has passed and revokes them.
func (l *List) ExpireNow(ctx context.Context) {
	l.mu.Lock()
	now := l.now()
	var gone []Entry
	for pin, e := range l.entries {
		if e.Expires != nil && !now.Before(*e.Expires) {
			gone = append(gone, e)
			delete(l.entries, pin)
		}
	}
	r := l.revoker
	l.mu.Unlock()
	for _, e := range gone {
		l.revoked(ctx, r, e, "allow list entry expired")
	}
}

// Entries returns the list sorted by lease, for status output.
func (l *List) Entries() []Entry {
	l.mu.Lock()
	out := make([]Entry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Lease < out[j].Lease })
	return out
}

func (l *List) revoked(ctx context.Context, r Revoker, e Entry, reason string) {
	l.mu.Lock()
	for serial, pin := range l.serials {
		if pin == e.Pin {
			delete(l.serials, serial)
		}
	}
	l.mu.Unlock()
	l.log.Info("authz: key revoked", "pin", e.Pin, "lease", e.Lease, "reason", reason)
	if r != nil {
		r.Revoke(ctx, e.Pin, reason)
	}
}

// FixedAddresses maps the virtual IPs entries fix (Entry.VirtualIP) to
// their pins, so that the address pool never gives them to another key.
func (l *List) FixedAddresses() map[netip.Addr]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[netip.Addr]string{}
	for _, e := range l.entries {
		if e.VirtualIP.IsValid() {
			out[e.VirtualIP] = e.Pin
		}
	}
	return out
}

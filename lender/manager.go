package lender

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ferry/lenderca"
	"ferry/power"
	"ferry/store"
)

// PowerDriver switches one server. It is declared here, where it is
// consumed; the power package's drivers satisfy it.
type PowerDriver interface {
	On(ctx context.Context) error
	Off(ctx context.Context) error
	Status(ctx context.Context) (power.State, error)
}

// powerTimeout bounds one power action.
const powerTimeout = 5 * time.Minute

// PowerFunc makes the driver of a server from its inventory entry.
type PowerFunc func(s Server) (PowerDriver, error)

// Manager is the lender's logic over its store.
type Manager struct {
	st       store.Store
	ca       *lenderca.CA
	log      *slog.Logger
	url      string
	tokenTTL atomic.Int64 // a time.Duration; a reload may change it
	power    PowerFunc
	now      func() time.Time
	metrics  *metrics
	// waits holds borrowers' polls of unchanged leases until they
	// change (leasewait.go); st tells it of every committed change.
	waits *leaseWaits

	// netboot: tokens are bound when netboot serves their script, and an
	// enrollment needs that binding.
	netboot bool

	mu    sync.Mutex
	boots map[string]bootState // by MAC: plaintext tokens live only in memory
}

// Options configure a Manager.
type Options struct {
	PublicURL string
	TokenTTL  time.Duration
	// Power may be nil: the manager then logs what an operator must do.
	Power PowerFunc
	Now   func() time.Time
}

// New makes a Manager.
func New(st store.Store, ca *lenderca.CA, log *slog.Logger, o Options) *Manager {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = 10 * time.Minute
	}
	waits := newLeaseWaits(maxHeldPerBorrower, maxHeldTotal)
	m := &Manager{st: watchedStore{Store: st, waits: waits}, ca: ca, log: log, url: o.PublicURL,
		power: o.Power, now: o.Now, metrics: newMetrics(), boots: map[string]bootState{}, waits: waits}
	m.tokenTTL.Store(int64(o.TokenTTL))
	m.metrics.reg.MustRegister(append(waits.collectors(), newStoreCollector(m))...)
	return m
}

// tokenLife is how long a boot's token lives (token_ttl).
func (m *Manager) tokenLife() time.Duration { return time.Duration(m.tokenTTL.Load()) }

func newID(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func serverID(mac string) string { return "s" + strings.ReplaceAll(mac, ":", "") }

// powerSwitch runs one power action, or logs the manual step without a driver.
func (m *Manager) powerSwitch(ctx context.Context, s Server, on bool) error {
	action := map[bool]string{true: "on", false: "off"}[on]
	if m.power == nil {
		m.log.Warn("no power driver wired: power the server by hand", "mac", s.MAC, "action", action, "driver", s.Power)
		return nil
	}
	d, err := m.power(s)
	if err != nil {
		return fmt.Errorf("power driver %q of %s: %w", s.Power, s.MAC, err)
	}
	if on {
		err = d.On(ctx)
	} else {
		err = d.Off(ctx)
	}
	m.metrics.powerAction(s.Power, action, err)
	if err != nil {
		return fmt.Errorf("power %s %s via %s: %w", action, s.MAC, s.Power, err)
	}
	return nil
}

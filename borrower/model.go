package borrower

import (
	"net/netip"
	"time"

	"ferry/api"
)

// Local lease states, in order.
const (
	StateRequesting = "requesting" // recorded, the lender being asked (roots are copied once it said yes)
	StateActive     = "active"     // the lender made the lease
	StateReturning  = "returning"  // return started
	StateReturned   = "returned"
	StateFailed     = "failed" // refused; no root copied, nothing leased
)

// Lease is the borrower's record of one lease.
type Lease struct {
	ID       string    `json:"id"`
	Key      string    `json:"idempotency_key"`
	State    string    `json:"state"`
	Count    int       `json:"count"`
	Image    string    `json:"image"`
	Template string    `json:"template"`
	Roots    []string  `json:"roots"`
	Created  time.Time `json:"created"`
	// Pool and DurationSeconds are what the request asked the lender
	// for (empty, 0: any pool, the configured lease length).
	Pool            string `json:"pool,omitempty"`
	DurationSeconds int64  `json:"duration_seconds,omitempty"`
	// Error is why the lender refused the lease (state failed), or why
	// the last attempt failed while it is still retried (requesting).
	Error string `json:"error,omitempty"`
	// Lender is the lender's last answer: its lease id, servers, phases
	// and the pins the gateway was told.
	Lender api.Lease `json:"lender"`
	Pins   []string  `json:"pins_allowed,omitempty"`
	// Addrs[i] is the tunnel address of the server of Roots[i]: the
	// gateway gives its key exactly that address, and its root is
	// exported to that address alone.
	Addrs []netip.Addr `json:"tunnel_addrs,omitempty"`
	// Cut: the gateway no longer lets the lease's keys in and their
	// exports are gone (return, or the lender ended the lease).
	Cut bool `json:"cut_off,omitempty"`
	// Shutdown is each server's clean shutdown at return (shutdown.go),
	// recorded before the gateway and the lender are told.
	Shutdown []Shutdown `json:"shutdown,omitempty"`
}

// Request is what `ferry borrower lease request` sends to the daemon.
type Request struct {
	Key      string `json:"idempotency_key"`
	Count    int    `json:"count"`
	Image    string `json:"image"`
	Template string `json:"template"`
	// Pool is the lender's pool to lease from ("" any).
	Pool string `json:"pool,omitempty"`
	// DurationSeconds is the lease's length (0: the configured one).
	DurationSeconds int64 `json:"duration_seconds,omitempty"`
}

package borrower

import (
	"time"

	"ferry/api"
)

// Local lease states, in order.
const (
	StateRequesting = "requesting" // recorded, roots being prepared, lender asked
	StateActive     = "active"     // the lender made the lease
	StateReturning  = "returning"  // return started
	StateReturned   = "returned"
	StateFailed     = "failed" // refused; roots removed, nothing leased
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
	Error    string    `json:"error,omitempty"`
	// Lender is the lender's last answer: its lease id, servers, phases
	// and the pins the gateway was told.
	Lender api.Lease `json:"lender"`
	Pins   []string  `json:"pins_allowed,omitempty"`
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
}

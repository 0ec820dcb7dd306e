// Package lender is the lender's manager: the inventory of lendable
// servers, leases made for borrower managers, one-time enrollment of lent
// servers against the lender CA, their phase reports, and the return that
// powers them off, revokes their certificates and puts them back in the
// pool.
//
// Manager holds the logic over a store.Store; every state change is one
// transaction. Serve runs its three listeners: the agent-facing HTTPS
// (enrollment, phases, CRL; pinned by the CA fingerprint), the
// manager-to-manager API (mutual TLS) and the local admin socket the CLI
// uses.
package lender

import (
	"time"

	"ferry/api"
)

// Server states. Free, leased and maintenance are stored; a leased
// server whose lease member is in power-error, boot-timeout or conflict
// is shown in that state (serverView), so that an operator sees what to
// act on without reading the lease.
const (
	ServerFree   = "free"
	ServerLeased = "leased"
	// ServerMaintenance: taken out of lending by an operator; never
	// leased until cleared.
	ServerMaintenance = "maintenance"
)

// Server is one lendable machine of the inventory, keyed by MAC.
type Server struct {
	ID        string            `json:"id"`
	MAC       string            `json:"mac"`
	Pool      string            `json:"pool"`
	Power     string            `json:"power"`
	PowerOpts map[string]string `json:"power_opts,omitempty"`
	State     string            `json:"state"`
	LeaseID   string            `json:"lease_id,omitempty"`
	// Phase is its lease member's phase (shown, not stored).
	Phase string `json:"phase,omitempty"`
	// LastError is the last failure of the server (a power action, a boot
	// that never enrolled, a conflict), until it is cleared by success.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Note is why an operator put it in maintenance.
	Note string `json:"note,omitempty"`
}

// leaseRec is a stored lease: the public view plus what the agents need.
type leaseRec struct {
	api.Lease
	Request api.LeaseRequest `json:"request"`
	// Owner is the borrower that made the lease; empty in leases stored
	// before leases had owners, which belong to DefaultBorrower.
	Owner string `json:"owner,omitempty"`
}

// tokenRec is a stored enrollment token, keyed by its hash.
type tokenRec struct {
	MAC      string    `json:"mac"`
	LeaseID  string    `json:"lease_id"`
	ServerID string    `json:"server_id"`
	Index    int       `json:"index"`
	Expires  time.Time `json:"expires"`
	Used     time.Time `json:"used,omitzero"`
	// Binding is what the lender observed of the boot the token is for:
	// set at the script fetch (or, without netboot, the enrollment).
	Binding *Binding `json:"binding,omitempty"`
}

// certRec is an issued certificate, keyed by hex serial.
type certRec struct {
	LeaseID  string    `json:"lease_id"`
	ServerID string    `json:"server_id"`
	Index    int       `json:"index"`
	SPKIPin  string    `json:"spki_sha256"`
	NotAfter time.Time `json:"not_after"`
	Revoked  time.Time `json:"revoked,omitzero"`
	// DER is the certificate, answered again to a repeated enrollment.
	DER []byte `json:"der,omitempty"`
}

// Boot is what netboot puts on A's kernel command line for one boot.
type Boot struct {
	MAC         string `json:"mac"`
	LeaseID     string `json:"lease_id"`
	ServerID    string `json:"server_id"`
	ManagerURL  string `json:"manager_url"`
	CAPin       string `json:"ca_sha256"`
	Token       string `json:"token"`
	KernelParam string `json:"cmdline"`
	// State: pending (script not fetched yet), fetched, enrolled.
	State string `json:"state"`
}

// Package api is the wire contract between ferry's managers and agents:
// versioned paths, JSON types, bounded decoders and the TLS configurations
// that carry them.
//
// Three conversations use it. Borrower manager to lender manager (mutual TLS):
// request a lease, read its status (servers, phases, the SPKI pins of the
// one-time keys the lender signed) and return it. Agent to lender manager
// (HTTPS, lender CA pinned by fingerprint): enroll with a one-time token and
// a CSR, then report phases with the certificate it got. And at return,
// borrower manager to each lent server's keeper: the shutdown request
// (keeper.go).
//
// Everything decoded here comes from the network: Decode bounds the size,
// refuses unknown fields and trailing data, and each type's Validate names
// the field that is wrong.
package api

import "time"

// Paths of version 1. A lease's own resources hang below PathLeases + "/" + ID.
const (
	PathLeases = "/v1/leases"      // POST LeaseRequest -> Lease; GET -> []Lease
	PathReturn = "/return"         // POST PathLeases/ID/return -> Lease
	PathExtend = "/extend"         // POST PathLeases/ID/extend ExtendRequest -> Lease
	PathEvents = "/events"         // GET PathLeases/ID/events -> []Event: the lease's history at the lender
	PathCert   = "/v1/certificate" // GET CertResponse: the newest certificate of the caller's key (agent, client cert)
	PathEnroll = "/v1/enroll"      // POST EnrollRequest -> EnrollResponse (agent)
	PathPhase  = "/v1/phase"       // POST PhaseReport (agent, client cert)
	PathCRL    = "/v1/crl"         // GET DER CRL of the lender CA
	PathCA     = "/v1/ca.pem"      // GET PEM of the lender CA
	PathHealth = "/v1/health"      // GET 200 when serving
	PathMetric = "/metrics"        // GET Prometheus text format
)

// HeaderRootState is set on the borrower's 503 answer to an image B
// request of a server whose root is not ready yet: the root's state
// ("copying 37%"), which image A's wait-root prints on the console.
const HeaderRootState = "X-Ferry-Root"

// Size limits of request bodies, before any parsing.
const (
	MaxLeaseRequest = 256 << 10
	MaxEnroll       = 16 << 10
	MaxPhase        = 4 << 10
	MaxResponse     = 8 << 20
	MaxServers      = 1024
)

// Artifact is a file the agent fetches and checks.
type Artifact struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
}

// Image is image B as the lender passes it on to the agent.
type Image struct {
	Kernel  Artifact `json:"kernel"`
	Initrd  Artifact `json:"initrd"`
	Cmdline string   `json:"cmdline"`
	// Modules, when set, is the borrower's module bundle for B's kernel
	// (a newc archive of ferry/modules/**.ko: ESP, tun, what initrd(B)
	// lacks); A appends it to initrd(B), digest checked.
	Modules *Artifact `json:"modules,omitempty"`
}

// NFSRoot is one server's root, as in docs/CONTRACT.md "root".
type NFSRoot struct {
	Server     string `json:"server"`
	Path       string `json:"path"`
	NFSVersion string `json:"nfs_version,omitempty"`
	Options    string `json:"options,omitempty"`
	Init       string `json:"init,omitempty"`
	State      string `json:"state,omitempty"`
}

// LeaseRequest asks the lender for Count servers. A retry with the same
// IdempotencyKey returns the lease the first request made.
type LeaseRequest struct {
	IdempotencyKey  string    `json:"idempotency_key"`
	Count           int       `json:"count"`
	Pool            string    `json:"pool,omitempty"`
	Gateway         string    `json:"gateway"`
	BorrowerCA      string    `json:"borrower_ca_pem"`
	Image           Image     `json:"image"`
	Roots           []NFSRoot `json:"roots"`
	DurationSeconds int64     `json:"duration_seconds"`
	// Tunnel, when set, is the IKE timers the servers' tunnels use;
	// omitted: ferry's defaults, which its gateway shares.
	Tunnel *TunnelTimers `json:"tunnel,omitempty"`
	// TunnelPool is the IPv4 prefix the gateway gives the servers'
	// virtual IPs from (ParseTunnelPool). Each server guards it fail
	// closed: a packet to another lent server's virtual IP never leaves
	// in clear. It must not hold the gateway. Omitted (an older
	// borrower): not guarded, and A says so on its console.
	TunnelPool string `json:"tunnel_pool,omitempty"`
}

// TunnelTimers are a lease's IKE timers, the keys of the gateway's
// gateway.json and of the server's tunnel state (ipsec/ike.Timers); zero
// fields take the defaults (DPD 10 s, IKE SA 4 h, CHILD_SA 1 h, rekey
// margin 6 min).
type TunnelTimers struct {
	DPDSeconds           int `json:"dpd_seconds,omitempty"`
	IKELifetimeSeconds   int `json:"ike_lifetime_seconds,omitempty"`
	ChildLifetimeSeconds int `json:"child_lifetime_seconds,omitempty"`
	RekeyMarginSeconds   int `json:"rekey_margin_seconds,omitempty"`
}

// ExtendRequest lengthens a lease to Until (the lease's new end). It is
// absolute so that a retry after a lost answer extends once: an Until at
// or before the lease's end changes nothing.
type ExtendRequest struct {
	Until time.Time `json:"until"`
}

// CertResponse is a renewed one-time certificate: same key, same lease
// and server, the lease's current end.
type CertResponse struct {
	Certificate string    `json:"certificate_pem"`
	NotAfter    time.Time `json:"not_after"`
}

// Lease states.
const (
	LeaseActive   = "active"
	LeaseReturned = "returned"
)

// Lease is the lender's view of a lease, as the borrower reads it.
type Lease struct {
	ID       string        `json:"id"`
	Key      string        `json:"idempotency_key"`
	Borrower string        `json:"borrower,omitempty"` // who made it: the lender's name of the borrower
	State    string        `json:"state"`
	Created  time.Time     `json:"created"`
	Expires  time.Time     `json:"expires"`
	Returned time.Time     `json:"returned,omitzero"`
	Servers  []LeaseServer `json:"servers"`
}

// LeaseServer is one lent server: its phase, its one-time key's pin and
// the phases it reported.
type LeaseServer struct {
	ID         string `json:"id"`
	MAC        string `json:"mac"`
	Phase      string `json:"phase"`
	SPKIPin    string `json:"spki_sha256,omitempty"`
	CertSerial string `json:"cert_serial,omitempty"`
	Conflict   string `json:"conflict,omitempty"`
	// Error is why the server is in power-error, boot-timeout or
	// conflict (or the last failure of its lease), for the operator and
	// the borrower alike.
	Error  string        `json:"error,omitempty"`
	Phases []PhaseReport `json:"phases,omitempty"`
	// Certificate is the one-time certificate (PEM) the lender signed for
	// the server's key: the borrower pins that key at a strongSwan gateway.
	Certificate string `json:"certificate_pem,omitempty"`
}

// Event is one entry of a server's or a lease's history at the lender
// (state changes, power actions, phases, errors), oldest first, bounded.
type Event struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"` // state, power, phase, error
	MAC    string    `json:"mac,omitempty"`
	Lease  string    `json:"lease,omitempty"`
	What   string    `json:"what"`
	Error  string    `json:"error,omitempty"`
	Source string    `json:"source,omitempty"` // lender, agent, operator, borrower NAME
}

// EnrollRequest is the agent's first call: its one-time token, the MAC it
// booted from and a CSR for its one-time key.
type EnrollRequest struct {
	Token string `json:"token"`
	MAC   string `json:"mac"`
	CSR   string `json:"csr_pem"`
}

// EnrollResponse carries the signed certificate and what the agent needs
// to reach the borrower.
type EnrollResponse struct {
	Certificate string    `json:"certificate_pem"`
	CA          string    `json:"ca_pem"`
	LeaseID     string    `json:"lease_id"`
	ServerID    string    `json:"server_id"`
	Gateway     string    `json:"gateway"`
	BorrowerCA  string    `json:"borrower_ca_pem"`
	Image       Image     `json:"image"`
	Root        NFSRoot   `json:"root"`
	NotAfter    time.Time `json:"not_after"`
	// Tunnel is the lease request's, passed through.
	Tunnel *TunnelTimers `json:"tunnel,omitempty"`
	// TunnelPool is the lease request's, passed through.
	TunnelPool string `json:"tunnel_pool,omitempty"`
}

// PhaseReport is one finished (or failed) phase of the transfer.
type PhaseReport struct {
	LeaseID  string    `json:"lease_id"`
	ServerID string    `json:"server_id"`
	Phase    string    `json:"phase"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Bytes    int64     `json:"bytes"`
	Error    string    `json:"error,omitempty"`
}

// Error is the body of every refusal: what was wrong and which field.
type Error struct {
	Field  string `json:"field,omitempty"`
	Reason string `json:"error"`
}

// Package gatewayctl tells the borrower's gateway which public keys may open
// a tunnel: one key per lent server, for the duration of its lease.
//
// Two gateways are supported. ferry's own gateway reads an allow list of
// JSON lines (AllowFile edits it, in the exact format of ipsec/authz, which
// the gateway watches). strongSwan is told through VICI (Swan loads and
// unloads one connection per lease and server).
package gatewayctl

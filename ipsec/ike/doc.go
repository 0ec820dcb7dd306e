// Package ike is ferry's IKEv2 daemon (RFC 7296): the initiator and
// responder state machines over UDP ports 500 and 4500, on top of the wire
// format and cryptography of ipsec/ikev2, handing the negotiated CHILD_SAs
// to an ipsec/dataplane (user-space ESP or kernel XFRM).
//
// One Daemon serves both roles. As responder it answers IKE_SA_INIT and
// IKE_AUTH, authenticates the peer by its certificate (pki.Verifier: chain
// to the CA, validity, key usage) and asks an Authorizer (ipsec/authz: the
// key's pin on the allow list), hands out a virtual IP from a Pool,
// narrows the traffic selectors to its subnets and the virtual IP, and
// installs the CHILD_SA. As initiator (Connect) it runs the same exchanges
// from the other side. Both then keep the SA alive: liveness checks (empty
// INFORMATIONAL), NAT-T keepalives, DELETE, retransmission with
// exponential back-off and a give-up limit.
//
// Both ends rekey: CHILD_SAs when the data plane reports a soft expiry
// (time at a random point between two and one rekey margins before the
// lifetime, bytes or packets at a random 80-90 %; a hard expiry deletes
// the CHILD_SA at both ends), IKE SAs the same way by time (timers.go).
// A replaced CHILD_SA keeps decrypting for a grace, then goes even if the
// peer never deletes it (retire.go). Simultaneous rekeys are settled by the nonce
// rule of sections 2.8.1 and 2.8.2 (collide.go). When an authenticated
// message shows the peer's NAT mapping moved (section 2.23), IKE and the
// CHILD_SAs follow it (the data plane's SetRemote).
//
// A request for an IKE SA the daemon does not hold gets INVALID_IKE_SPI;
// an initiator takes that only as a hint to check liveness at once
// (liveness.go), as it does when its ESP goes unanswered. Address pool
// bindings last as long as the key is on the allow list (pool.go), and
// INITIAL_CONTACT replaces a key's older SAs.
//
// Refusals follow RFC 7296 section 2.21: an unauthenticated IKE_SA_INIT
// request gets a notify (NO_PROPOSAL_CHOSEN, INVALID_KE_PAYLOAD, COOKIE)
// or is dropped; an IKE_AUTH that fails authentication gets
// AUTHENTICATION_FAILED; anything that does not decrypt is dropped
// silently. Each refusal is logged once with its reason; a refused
// IKE_AUTH's answer is kept for a while (bounded) so that retransmissions
// get the same refusal.
package ike

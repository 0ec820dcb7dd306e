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
//
// # Exchanges
//
// Each exchange is one file with both roles in it, initiator first
// (CREATE_CHILD_SA is two: one for each kind of SA it rekeys), much as
// strongSwan lays out its IKEv2 tasks (ike_init, ike_auth, child_rekey,
// ike_rekey, ike_delete, ike_dpd). Each file's header says more; the
// functions where each role starts and goes on:
//
//	exchange                initiator                  responder                   file
//	IKE_SA_INIT,            Connect, sendInit,         respondInit, cookieOK,      exchange_init.go
//	  NAT detection         initReply, completeInit    acceptInit, refuseInit
//	IKE_AUTH                sendAuth, authReply,       respondAuth, authenticate,  exchange_auth.go
//	                        initiatorChild             initialContact,
//	                                                   responderChild, holdRefused
//	CREATE_CHILD_SA,        rekeyChild,                respondCreateChild,         exchange_child_rekey.go
//	  CHILD_SA rekey        rekeyChildReply            rekeyChildResponse
//	CREATE_CHILD_SA,        rekeyIKE, rekeyIKEReply,   respondCreateChild,         exchange_ike_rekey.go
//	  IKE SA rekey          settleIKECollision         rekeyIKEResponse
//	INFORMATIONAL,          deleteChild, deleteIKE,    respondInfo,                exchange_informational.go
//	  DELETE                sendDeleteNow              deleteChildren
//	INFORMATIONAL,          checkLiveness              respondInfo                 exchange_informational.go
//	  liveness
//
// Every message comes in through receive (receive.go), which checks the
// header, finds the SA, applies the window and decrypts; responses go to
// the pending request's onReply, requests to handleRequest, which picks
// the responder function by exchange and state. Requests leave through
// request (window of one, retransmitted by tickSA), answers through
// reply (cached for retransmitted requests). What starts an initiator
// role is outside the exchanges: Connect and Keep (connect.go), the
// data plane's expiry (expired, childDue: child.go), the IKE SA lifetime
// (tickSA: tick.go) and the liveness checks' reasons (livenessDue:
// liveness.go).
//
// # The IKE SA state machine
//
// An IKE SA is in one state (sa.go). An initiator's SA starts in
// init-sent (Connect), goes to auth-sent once the IKE_SA_INIT response is
// taken (completeInit) and to established once the IKE_AUTH response
// authenticates the gateway (authReply). A responder's starts half-open
// (acceptInit; at most HalfOpenMax of them, each for 30 s) and goes to
// established when IKE_AUTH authenticates the peer (respondAuth), or to
// refused, where it only answers retransmissions of that IKE_AUTH from the
// cache, for RefusalHold. An IKE SA rekey makes the new SA established at
// once (moveSA) and puts the old one in deleting (retireIKE) until its
// DELETE is answered or RekeyGrace passed; sendDeleteNow puts an SA in
// deleting too. From any state an SA ends in removeSA: a failed exchange,
// the peer's DELETE, a request unanswered after the back-off, an
// INITIAL_CONTACT replacing it, Revoke, shutdown. Only an established SA
// takes CREATE_CHILD_SA (one in deleting refuses it with
// TEMPORARY_FAILURE); INFORMATIONAL is answered in every state that has
// keys but refused. The CHILD_SAs of an SA have no state of their own beyond
// flags (child: rekeying, replaced, dead), and the window of one allows a
// single exchange of ours at a time, so work that finds it busy waits
// (rekeyDue, dead: childDue).
//
// # Other files
//
//	daemon.go         Daemon, New, Run, shutdown
//	socket.go         the ports 500 and 4500, NAT-T framing; socket_*.go
//	receive.go        message in: checks, window, decryption, dispatch; request, reply
//	tick.go           timers: retransmission, give-up, rekey, liveness, keepalives
//	sa.go             ikeSA, child, request, state; SPIs, nonces, removeSA
//	child.go          CHILD_SA keys, lifetime, install, lookup, expiry events
//	authenticator.go  ID, CERT, CERTREQ, AUTH: ours and the check of the peer's
//	proposal.go       the proposals we send, the ESP proposal's choice and check
//	payload.go        payload lookups
//	narrow.go         traffic selector narrowing
//	collide.go        simultaneous rekeys (the nonce rule)
//	retire.go         replaced CHILD_SAs and IKE SAs: grace and bounds
//	moved.go          following the peer's NAT mapping
//	liveness.go       DPD, unanswered ESP, INVALID_IKE_SPI (fast recovery)
//	window.go         the inbound window, retransmission back-off
//	cookie.go         COOKIE secrets
//	refusal.go        refusals and their log
//	pool.go           virtual IP pool and its bindings
//	history.go        connection histories for status
//	control.go        Revoke, DeleteAll, Status
//	controlsock.go    the control socket
//	connect.go        Connect, Keep
//	config.go         Config; timers.go: Timers and the rekey jitter
//	initiatorstate.go InitiatorState, saved for kexec and the keeper
//	userspace_*.go    a user-space ESP data plane (TUN, router, NAT-T socket)
package ike

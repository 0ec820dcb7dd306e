package ike

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"ferry/ipsec/dataplane"
	"ferry/ipsec/ikev2"
	"ferry/pki"
)

// state is where an IKE SA stands (the state machine: doc.go).
type state int

const (
	stInitSent    state = iota + 1 // initiator: IKE_SA_INIT sent
	stHalfOpen                     // responder: IKE_SA_INIT answered
	stAuthSent                     // initiator: IKE_AUTH sent
	stEstablished                  // both authenticated
	stDeleting                     // DELETE sent, or rekeyed (moved) and waiting for one
	stRefused                      // responder: IKE_AUTH refused; kept to answer its retransmissions
)

// String is the state's name in status (SAStatus.State).
func (s state) String() string {
	return [...]string{"?", "init-sent", "half-open", "auth-sent", "established", "deleting", "refused"}[s]
}

// ikeSA is one IKE SA and its CHILD_SAs, as seen from this side.
type ikeSA struct {
	initiator bool // we initiated this IKE SA (IKE_SA_INIT or the rekey that made it)
	origin    bool // we opened the tunnel (Connect), whatever rekeys did since
	moved     bool // rekeyed: its CHILD_SAs and lease live on in the new SA
	// movedAt is when; it waits for its DELETE at most RekeyGrace
	// (retire.go).
	movedAt    time.Time
	spii, spir uint64
	st         state
	remote     netip.AddrPort // where the peer's messages come from
	// openKey is the responder's half-open table entry, as made from the
	// IKE_SA_INIT request: remote moves when IKE_AUTH arrives on another
	// port (NAT-T), and the entry must leave all the same.
	openKey   initKey
	natT      bool // IKE and ESP on the NAT-T port
	behindNAT bool // this side is behind a NAT: send keepalives

	suite  *ikev2.Suite
	keys   *ikev2.IKEKeys
	cipher *ikev2.Cipher
	ni, nr []byte
	dh     *ikev2.DH
	// initReq and initResp are the IKE_SA_INIT messages as sent: AUTH
	// signs them.
	initReq, initResp []byte
	cookie            []byte
	restarts          int  // IKE_SA_INIT redone for a cookie or DH group
	fragOK            bool // peer sent IKEV2_FRAGMENTATION_SUPPORTED

	nextID  uint32   // message ID of our next request
	pending *request // our outstanding request (window of one)
	in      inbound
	reasm   *ikev2.Reassembler
	reasmID uint32

	peer     *pki.Peer
	lease    string
	vip      netip.Addr
	fixedVIP netip.Addr   // responder: the allow list's address for the peer's key
	dns      []netip.Addr // initiator: name servers the gateway gave
	children []*child

	created, lastRecv, lastSend time.Time
	// lastESPIn is when the CHILD_SAs' inbound counters last moved,
	// probedAt when they were read; quietSince is when we started sending
	// ESP that nothing answered (liveness.go).
	lastESPIn, probedAt, quietSince time.Time
	// quietChecked is when a liveness check was last started for
	// unanswered ESP.
	quietChecked time.Time
	// hint is why the last liveness check was started early, for the
	// reason the SA is given up.
	hint string
	// rekeyAt is when to rekey this IKE SA (jittered IKELifetime).
	rekeyAt time.Time
	// rekeyNi is our nonce while our IKE SA rekey of it is in flight;
	// rival is the peer's simultaneous rekey we answered meanwhile
	// (RFC 7296 section 2.8.2).
	rekeyNi []byte
	rival   *ikeRival
	// connect is closed with the result when an initiated SA is up or
	// failed.
	result   chan error
	target   Target // initiator: what Connect asked for
	childSPI uint32 // initiator: inbound SPI offered in IKE_AUTH
}

// localSPI is the SPI this side chose: the key of the daemon's SA table.
func (sa *ikeSA) localSPI() uint64 {
	if sa.initiator {
		return sa.spii
	}
	return sa.spir
}

// child is one installed CHILD_SA.
type child struct {
	cfg      dataplane.ChildSA
	rekeying bool // our CREATE_CHILD_SA replacing it is under way
	replaced bool // a rekey (ours or the peer's) replaced it: only its DELETE is due
	// retiredAt is when it was replaced: it keeps decrypting what was in
	// flight until Config.RekeyGrace later, then goes whether or not the
	// peer deleted it (retire.go).
	retiredAt time.Time
	rival     *rival // the peer's simultaneous rekey of it, answered while ours ran
	// rekeyDue and dead are the data plane's soft and hard expiry,
	// waiting for the window of one: rekey it, or tell the peer it is gone.
	rekeyDue, dead bool
	// seenIn and seenOut are the packet counters at the last probe.
	seenIn, seenOut uint64
	installed       time.Time
}

// request is our outstanding request and its retransmission state.
type request struct {
	id     uint32
	exch   ikev2.ExchangeType
	dgrams [][]byte
	sends  int
	due    time.Time
	// onReply handles the decrypted response; onFail runs when the peer
	// never answered.
	onReply func(m *ikev2.Message)
	onFail  func()
	// hinted: the peer answered it with INVALID_IKE_SPI; it is sent
	// hintLeft more times, hintDelay apart, before the SA is given up.
	hinted   bool
	hintLeft int
}

// newSPI picks a fresh non-zero IKE SPI not in use.
func (d *Daemon) newSPI() uint64 {
	for {
		var b [8]byte
		rand.Read(b[:])
		s := binary.BigEndian.Uint64(b[:])
		if _, used := d.sas[s]; s != 0 && !used {
			return s
		}
	}
}

// newChildSPI picks a random CHILD_SA SPI outside the reserved range.
func newChildSPI() uint32 {
	for {
		var b [4]byte
		rand.Read(b[:])
		// SPIs 1-255 are reserved by IANA (RFC 4303 2.1).
		if s := binary.BigEndian.Uint32(b[:]); s > 255 {
			return s
		}
	}
}

// nonce is a fresh 32-octet nonce.
func nonce() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// removeSA forgets sa, removes its CHILD_SAs from the data plane and
// returns its virtual IP; pending Connect calls get the reason.
func (d *Daemon) removeSA(sa *ikeSA, reason string) {
	if sa.st == stRefused {
		d.refused--
		sa.st = stDeleting
		d.log.Debug("ike: forgot refused SA", "spi", fmt.Sprintf("%016x", sa.localSPI()), "reason", reason)
	}
	delete(d.sas, sa.localSPI())
	d.leaveHalfOpen(sa)
	for _, c := range sa.children {
		d.cfg.DataPlane.Remove(context.Background(), c.cfg.InSPI, c.cfg.OutSPI)
	}
	sa.children = nil
	if d.cfg.Authorizer == nil && d.cfg.Pool != nil && sa.peer != nil && sa.vip.IsValid() && !sa.origin && !sa.moved && !d.holds(sa.peer.Pin) {
		// Without an allow list there is no lease to bind the address
		// to (Revoke releases it otherwise): it goes with the key's last
		// SA.
		d.cfg.Pool.Release(sa.peer.Pin)
	}
	if sa.result != nil {
		sa.result <- errors.New(reason)
		sa.result = nil
	}
	if !sa.moved && sa.st == stEstablished {
		if h := d.history(sa); h != nil {
			h.lastReason, h.lastDown = reason, time.Now()
		}
	}
	if sa.origin && !sa.moved && sa.st == stEstablished {
		select {
		case d.lost <- struct{}{}:
		default:
		}
	}
	if sa.st == stEstablished || sa.st == stDeleting {
		d.log.Info("ike: SA down", "spi", fmt.Sprintf("%016x", sa.localSPI()), "peer", peerName(sa), "reason", reason)
	}
}

// leaveHalfOpen takes sa out of the half-open table: it authenticated,
// was refused, timed out or is gone. The entry is found by the key it was
// made with, never by the SA's current (peer-controlled) address.
func (d *Daemon) leaveHalfOpen(sa *ikeSA) {
	if d.halfOpen[sa.openKey] == sa {
		delete(d.halfOpen, sa.openKey)
	}
}

// holds reports whether an SA of the peer with pin is left (a responder's
// SA that has not been moved on by a rekey).
func (d *Daemon) holds(pin string) bool {
	for _, o := range d.sas {
		if !o.origin && !o.moved && o.peer != nil && o.peer.Pin == pin {
			return true
		}
	}
	return false
}

// peerName names sa's peer in logs: its certificate's subject once
// authenticated, else its address.
func peerName(sa *ikeSA) string {
	if sa.peer != nil {
		return sa.peer.Subject
	}
	return sa.remote.String()
}

package ike

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"ferry/ipsec/ikev2"
)

// receive handles one IKE message from the network.
func (d *Daemon) receive(b []byte, from netip.AddrPort, nat bool) {
	h, err := ikev2.DecodeHeader(b)
	if err != nil {
		var ve *ikev2.VersionError
		if errors.As(err, &ve) {
			d.log.Info("ike: refused message", "from", from, "reason", err)
			d.counts.refusedOthers.Add(1)
		} else {
			d.log.Debug("ike: dropped malformed header", "from", from, "err", err)
		}
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if h.Exchange == ikev2.IKE_SA_INIT && !h.IsResponse() && h.SPIr == 0 {
		d.respondInit(b, h, from, nat)
		return
	}
	local := h.SPIi
	if h.IsInitiator() {
		local = h.SPIr
	}
	sa := d.sas[local]
	if sa == nil || (h.IsInitiator() == sa.initiator) {
		d.log.Debug("ike: message for unknown SPI", "from", from, "spi", fmt.Sprintf("%016x", local), "exchange", h.Exchange)
		if h.Exchange != ikev2.IKE_SA_INIT {
			d.answerUnknownSPI(h, from, nat)
		}
		return
	}
	if h.IsResponse() && h.NextPayload != ikev2.PayloadSK && h.NextPayload != ikev2.PayloadSKF && h.Exchange != ikev2.IKE_SA_INIT {
		d.unprotected(sa, b, h)
		return
	}
	if h.Exchange == ikev2.IKE_SA_INIT {
		if h.IsResponse() && sa.st == stInitSent {
			d.initReply(sa, b, h)
		}
		return
	}
	d.receiveEncrypted(sa, b, h, from, nat)
}

func (d *Daemon) receiveEncrypted(sa *ikeSA, b []byte, h ikev2.Header, from netip.AddrPort, nat bool) {
	if sa.cipher == nil {
		return
	}
	if h.IsResponse() {
		if sa.pending == nil || h.MessageID != sa.pending.id {
			d.log.Debug("ike: dropped unexpected response", "id", h.MessageID)
			return
		}
	} else {
		switch sa.in.check(h.MessageID) {
		case resend:
			d.resendFrom(sa, b, h, from, nat)
			return
		case drop:
			d.log.Debug("ike: dropped request outside the window", "id", h.MessageID, "want", sa.in.next)
			return
		}
	}
	m, err := d.open(sa, b, h)
	if err != nil || m == nil {
		if err != nil {
			d.log.Debug("ike: dropped message that does not open", "from", from, "exchange", h.Exchange, "err", err)
		}
		return
	}
	sa.lastRecv = time.Now()
	d.follow(sa, from, nat)
	if h.IsResponse() {
		p := sa.pending
		sa.pending = nil
		sa.nextID++
		p.onReply(m)
		return
	}
	d.handleRequest(sa, m)
}

// follow moves sa to where an authenticated message came from: the
// peer's NAT mapping changed (RFC 7296 section 2.23).
func (d *Daemon) follow(sa *ikeSA, from netip.AddrPort, nat bool) {
	if sa.remote == from && sa.natT == nat {
		return
	}
	moved := sa.natT == nat && sa.st == stEstablished
	sa.remote, sa.natT = from, nat
	if moved {
		d.peerMoved(sa)
	}
}

// resendFrom answers a retransmitted request from the cache. One from a
// new address is authenticated first and moves the SA there: a peer whose
// NAT mapping changed while its request was in flight retransmits from the
// new mapping, and the cached answer must go there, not to the old one.
func (d *Daemon) resendFrom(sa *ikeSA, b []byte, h ikev2.Header, from netip.AddrPort, nat bool) {
	if (sa.remote != from || sa.natT != nat) && h.NextPayload != ikev2.PayloadSKF {
		if _, err := sa.cipher.OpenMessage(b); err == nil {
			sa.lastRecv = time.Now()
			d.follow(sa, from, nat)
		}
	}
	d.send(sa, sa.in.lastResp)
}

// open authenticates and decrypts an SK message or collects an SKF
// fragment; it returns nil while fragments are missing.
func (d *Daemon) open(sa *ikeSA, b []byte, h ikev2.Header) (*ikev2.Message, error) {
	if h.NextPayload != ikev2.PayloadSKF {
		return sa.cipher.OpenMessage(b)
	}
	if sa.reasm == nil || sa.reasmID != h.MessageID {
		sa.reasm, sa.reasmID = sa.cipher.NewReassembler(h.MessageID), h.MessageID
	}
	m, err := sa.reasm.Add(b)
	if m != nil {
		sa.reasm = nil
	}
	if errors.Is(err, ikev2.ErrFragmentIgnored) {
		return nil, nil
	}
	return m, err
}

func (sa *ikeSA) header(exch ikev2.ExchangeType, id uint32, response bool) ikev2.Header {
	h := ikev2.Header{SPIi: sa.spii, SPIr: sa.spir, Exchange: exch, MessageID: id}
	if sa.initiator {
		h.Flags |= ikev2.FlagInitiator
	}
	if response {
		h.Flags |= ikev2.FlagResponse
	}
	return h
}

// seal encrypts inner payloads, in fragments when too big and the peer
// supports them (RFC 7383).
func (d *Daemon) seal(sa *ikeSA, h ikev2.Header, inner []ikev2.Payload) ([][]byte, error) {
	msg, err := sa.cipher.SealMessage(h, inner)
	if err != nil {
		return nil, err
	}
	if len(msg) <= d.cfg.FragmentSize || !sa.fragOK {
		return [][]byte{msg}, nil
	}
	frags, err := sa.cipher.SealFragments(h, inner, d.cfg.FragmentSize)
	d.log.Debug("ike: message sent in fragments", "exchange", h.Exchange, "bytes", len(msg), "fragments", len(frags))
	return frags, err
}

// request sends a new request on sa (window of one: the caller checks
// sa.pending is nil) and arms retransmission.
func (d *Daemon) request(sa *ikeSA, exch ikev2.ExchangeType, inner []ikev2.Payload, onReply func(*ikev2.Message), onFail func()) error {
	dg, err := d.seal(sa, sa.header(exch, sa.nextID, false), inner)
	if err != nil {
		return err
	}
	sa.pending = &request{id: sa.nextID, exch: exch, dgrams: dg, sends: 1, due: time.Now().Add(d.cfg.Backoff.Delay(1)), onReply: onReply, onFail: onFail}
	d.send(sa, dg)
	return nil
}

// reply answers the peer's current request and caches the answer for
// retransmissions.
func (d *Daemon) reply(sa *ikeSA, exch ikev2.ExchangeType, inner []ikev2.Payload) {
	dg, err := d.seal(sa, sa.header(exch, sa.in.next, true), inner)
	if err != nil {
		d.log.Warn("ike: cannot encode response", "exchange", exch, "err", err)
		return
	}
	sa.in.answered(dg)
	d.send(sa, dg)
}

// handleRequest dispatches a decrypted request on a known SA.
func (d *Daemon) handleRequest(sa *ikeSA, m *ikev2.Message) {
	if sa.st == stRefused {
		return // only its IKE_AUTH is answered, from the cache
	}
	switch m.Header.Exchange {
	case ikev2.IKE_AUTH:
		if sa.st == stHalfOpen {
			d.respondAuth(sa, m)
		}
	case ikev2.INFORMATIONAL:
		d.respondInfo(sa, m)
	case ikev2.CREATE_CHILD_SA:
		switch sa.st {
		case stEstablished:
			d.respondCreateChild(sa, m)
		case stDeleting:
			// RFC 7296 section 2.25: a rekey raced with our DELETE of
			// this SA (we rekeyed it or are shutting it down).
			d.log.Info("ike: refused CREATE_CHILD_SA", "peer", peerName(sa), "notify", ikev2.TEMPORARY_FAILURE, "reason", "the IKE SA is being deleted")
			d.counts.refusedChildren.Add(1)
			d.reply(sa, ikev2.CREATE_CHILD_SA, []ikev2.Payload{&ikev2.Notify{Kind: ikev2.TEMPORARY_FAILURE}})
		}
	}
}

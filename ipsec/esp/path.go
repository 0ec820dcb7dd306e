package esp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"ferry/ipsec/dataplane"
)

// Run moves packets from the TUN device to the peers until ctx ends or the
// device fails. Run it in its own goroutine.
func (p *Plane) Run(ctx context.Context) error {
	buf := make([]byte, Headroom+p.cfg.MTU+Overhead+64)
	for ctx.Err() == nil {
		n, err := p.cfg.TUN.Read(buf[Headroom : Headroom+p.cfg.MTU])
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("esp: reading TUN: %w", err)
		}
		p.send(buf, n)
	}
	return nil
}

// send seals the inner packet at buf[Headroom:Headroom+n] and sends it.
func (p *Plane) send(buf []byte, n int) {
	_, dst, ok := innerAddrs(buf[Headroom : Headroom+n])
	if !ok {
		p.cnt.txNoSA.Add(1)
		return
	}
	out := p.tab.Load().lookup(dst)
	if out == nil {
		p.cnt.txNoSA.Add(1)
		return
	}
	pkt, seq, err := out.seal(buf, n)
	if err != nil {
		p.cnt.txErrors.Add(1)
		if errors.Is(err, ErrSeqExhausted) {
			p.hardExpire(out.spi, false, "sequence")
		}
		return
	}
	if seq == out.maxSeq-seqSoftMargin {
		p.emit(out.spi, false, dataplane.Soft, "sequence")
	}
	if _, err := p.cfg.Conn.WriteToUDPAddrPort(pkt, out.remote); err != nil {
		p.cnt.txErrors.Add(1)
		return
	}
	p.cnt.txPackets.Add(1)
	p.cnt.txBytes.Add(uint64(n))
	p.account(out.life, out.spi, false, n)
}

func (t *tables) lookup(dst netip.Addr) *outbound {
	for _, r := range t.routes {
		if r.prefix.Contains(dst) {
			return r.out
		}
	}
	return nil
}

func (p *Plane) account(m *meter, spi uint32, inbound bool, n int) {
	switch kind, reason := m.add(n); kind {
	case dataplane.Soft:
		p.emit(spi, inbound, kind, reason)
	case dataplane.Hard:
		p.hardExpire(spi, inbound, reason)
	}
}

// Input takes one ESP datagram received on the shared socket (after
// dataplane.Classify said ESP), decrypts it in place and writes the inner
// packet to the TUN device. A non-nil error says why the packet was dropped
// (it wraps one of the Err values) and is already counted in Stats.
func (p *Plane) Input(pkt []byte, from netip.AddrPort) error {
	inner, err := p.open(pkt)
	if err != nil {
		p.cnt.drop(err)
		return fmt.Errorf("esp: from %v: %w", from, err)
	}
	if inner == nil {
		return nil // dummy packet
	}
	if _, err := p.cfg.TUN.Write(inner); err != nil {
		p.cnt.other.Add(1)
		return fmt.Errorf("esp: from %v: writing TUN: %w", from, err)
	}
	p.cnt.rxPackets.Add(1)
	p.cnt.rxBytes.Add(uint64(len(inner)))
	return nil
}

func (p *Plane) open(pkt []byte) ([]byte, error) {
	if len(pkt) < hdrLen {
		return nil, fmt.Errorf("%d bytes: %w", len(pkt), ErrMalformed)
	}
	spi := binary.BigEndian.Uint32(pkt)
	in := p.tab.Load().in[spi]
	if in == nil {
		return nil, fmt.Errorf("SPI %#x: %w", spi, ErrNoSA)
	}
	inner, next, err := in.open(pkt)
	if err != nil {
		return nil, err
	}
	switch next {
	case nextNoNext:
		return nil, nil
	case nextIPv4:
	default:
		return nil, fmt.Errorf("SPI %#x: next header %d, only IPv4 (4) is carried: %w", spi, next, ErrMalformed)
	}
	if err := in.permits(inner); err != nil {
		return nil, err
	}
	p.account(in.life, spi, true, len(inner))
	return inner, nil
}

// permits checks the inner packet against the SA's traffic selectors
// (RFC 4301 5.2: inbound policy check after decapsulation).
func (in *inbound) permits(b []byte) error {
	src, dst, ok := innerAddrs(b)
	if !ok {
		return fmt.Errorf("SPI %#x: inner packet is not IPv4 (%d bytes): %w", in.spi, len(b), ErrMalformed)
	}
	if !containsAny(in.tsRemote, src) || !containsAny(in.tsLocal, dst) {
		return fmt.Errorf("SPI %#x: inner %v -> %v, selectors %v -> %v: %w", in.spi, src, dst, in.tsRemote, in.tsLocal, ErrPolicy)
	}
	return nil
}

func containsAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

package esp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"ferry/ipsec/dataplane"
)

// Run moves packets from the TUN device to the peers until ctx ends or the
// device fails. Run it in its own goroutine.
func (p *Plane) Run(ctx context.Context) error {
	if dev, ok := p.cfg.TUN.(vnetDevice); ok && dev.vnetOn() {
		return p.runVnet(ctx, dev)
	}
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

// vnetDevice is a TUN device with offloads (*TUN on Linux): it reads TCP
// super-segments and takes merged ones, with a virtio header (vnet.go).
type vnetDevice interface {
	vnetOn() bool
	readVnet(b []byte) (vnetHdr, []byte, error)
	writeVnet(h vnetHdr, iov [][]byte) error
}

// runVnet is Run over a device with offloads: one read brings up to 64 KB
// of one TCP flow, cut here into MTU-sized inner packets laid out back to
// back at a fixed stride, so that once sealed they are one UDP GSO send.
func (p *Plane) runVnet(ctx context.Context, dev vnetDevice) error {
	rbuf := make([]byte, vnetHdrLen+65535)
	var tx []byte
	var sizes []int
	for ctx.Err() == nil {
		h, pkt, err := dev.readVnet(rbuf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("esp: reading TUN: %w", err)
		}
		count, segLen, err := tsoLayout(h, pkt)
		if err != nil {
			p.cnt.txErrors.Add(1)
			p.log.Warn("esp: dropping packet from TUN", "err", err)
			continue
		}
		stride := espLen(segLen)
		if len(tx) < count*stride {
			tx = make([]byte, count*stride)
		}
		sizes = sizes[:0]
		if _, err := tsoSplit(h, pkt, func(i, n int) []byte {
			sizes = append(sizes, n)
			return tx[i*stride+Headroom:][:n]
		}); err != nil {
			p.cnt.txErrors.Add(1)
			p.log.Warn("esp: dropping packet from TUN", "err", err)
			continue
		}
		p.sendSegments(tx, stride, sizes)
	}
	return nil
}

// espLen is the size of the ESP packet that seal makes of n inner bytes.
func espLen(n int) int { return Headroom + n + (4-(n+2)%4)%4 + 2 + icvLen }

// send seals the inner packet at buf[Headroom:Headroom+n] and sends it.
func (p *Plane) send(buf []byte, n int) { p.sendSegments(buf, 0, []int{n}) }

// sendSegments seals the inner packets of one flow, sizes[i] bytes at
// buf[i*stride+Headroom:], in place and sends them. Each of them is
// counted, metered and sequenced as a packet of its own.
func (p *Plane) sendSegments(buf []byte, stride int, sizes []int) {
	_, dst, ok := innerAddrs(buf[Headroom : Headroom+sizes[0]])
	if !ok {
		p.cnt.txNoSA.Add(uint64(len(sizes)))
		return
	}
	out := p.tab.Load().lookup(dst)
	if out == nil {
		p.cnt.txNoSA.Add(uint64(len(sizes)))
		return
	}
	sealed := 0
	for i, n := range sizes {
		_, seq, err := out.seal(buf[i*stride:], n)
		if err != nil {
			p.cnt.txErrors.Add(uint64(len(sizes) - i))
			if errors.Is(err, ErrSeqExhausted) {
				p.hardExpire(out.spi, false, "sequence")
			}
			break
		}
		if seq == out.maxSeq-seqSoftMargin {
			p.emit(out.spi, false, dataplane.Soft, "sequence")
		}
		sealed++
	}
	for i := 0; i < sealed; {
		k, err := p.write(buf[i*stride:], stride, sizes[i:sealed], *out.remote.Load())
		if err != nil {
			p.cnt.txErrors.Add(uint64(k))
		} else {
			for _, n := range sizes[i : i+k] {
				p.cnt.txPackets.Add(1)
				p.cnt.txBytes.Add(uint64(n))
				p.account(out.life, out.spi, false, n)
			}
		}
		i += k
	}
}

// msgWriter is an outer socket that takes control messages (*net.UDPConn).
type msgWriter interface {
	WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error)
}

// UDP GSO limits: the kernel's UDP_MAX_SEGMENTS (64 before Linux 6.8) and
// one IPv4 datagram's worth of payload.
const (
	gsoMaxSegs  = 64
	gsoMaxBytes = 65535 - 20 - 8
)

// write sends ESP packets laid out at stride from buf (sizes are their inner
// lengths) to to, as many as one UDP GSO send takes, or one without GSO.
// It returns how many it dealt with.
func (p *Plane) write(buf []byte, stride int, sizes []int, to netip.AddrPort) (int, error) {
	k := min(len(sizes), gsoMaxSegs, max(1, gsoMaxBytes/max(stride, 1)))
	w, ok := p.cfg.Conn.(msgWriter)
	if k > 1 && ok && !p.noGSO.Load() {
		var oob [32]byte
		n := (k-1)*stride + espLen(sizes[k-1])
		_, _, err := w.WriteMsgUDPAddrPort(buf[:n], udpSegmentCmsg(oob[:], stride), to)
		if err == nil || !gsoRefused(err) {
			return k, err
		}
		// The path cannot segment (no checksum offload, an old kernel):
		// fall back to one datagram per packet from now on.
		p.noGSO.Store(true)
		p.log.Warn("esp: UDP GSO refused, sending one datagram per packet", "err", err)
	}
	_, err := p.cfg.Conn.WriteToUDPAddrPort(buf[:espLen(sizes[0])], to)
	return 1, err
}

// gsoRefused tells errors that mean "this socket or route cannot do UDP
// GSO" from transient ones.
func gsoRefused(err error) bool {
	return errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOPROTOOPT)
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

// rxBatch holds the inner packets of one socket read (one UDP GRO run),
// decrypted in place and checked, until flush writes them to the TUN.
type rxBatch struct {
	pkts [][]byte
	iov  [][]byte
}

// input takes one ESP datagram read by ServeUDP (dataplane.Classify said
// ESP), decrypts it in place and checks it; the inner packet is only
// queued in b, so that flush can merge a flow's segments into one TUN
// write. A non-nil error says why the packet was dropped (it wraps one of
// the Err values) and is already counted in Stats.
func (p *Plane) input(b *rxBatch, pkt []byte, from netip.AddrPort) error {
	inner, err := p.open(pkt, from)
	if err != nil {
		p.cnt.drop(err)
		return fmt.Errorf("esp: from %v: %w", from, err)
	}
	if inner != nil {
		b.pkts = append(b.pkts, inner)
	}
	return nil
}

// flush writes the queued inner packets in order, merging runs of one TCP
// flow when the device takes super-segments, and empties b.
func (p *Plane) flush(b *rxBatch) {
	dev, ok := p.cfg.TUN.(vnetDevice)
	ok = ok && dev.vnetOn()
	for i := 0; i < len(b.pkts); {
		j, bytes := i+1, len(b.pkts[i])
		var err error
		if ok {
			j = groEnd(b.pkts, i)
		}
		if j-i == 1 {
			_, err = p.cfg.TUN.Write(b.pkts[i])
		} else {
			for _, q := range b.pkts[i+1 : j] {
				bytes += len(q)
			}
			var h vnetHdr
			h, b.iov = groMerge(b.pkts[i:j], append(b.iov[:0], nil))
			err = dev.writeVnet(h, b.iov)
		}
		if err != nil {
			p.cnt.other.Add(uint64(j - i))
			p.log.Debug("esp: writing TUN", "packets", j-i, "err", err)
		} else {
			p.cnt.rxPackets.Add(uint64(j - i))
			p.cnt.rxBytes.Add(uint64(bytes))
		}
		i = j
	}
	clear(b.pkts) // do not pin the read buffer's views
	b.pkts = b.pkts[:0]
}

func (p *Plane) open(pkt []byte, from netip.AddrPort) ([]byte, error) {
	if len(pkt) < hdrLen {
		return nil, fmt.Errorf("%d bytes: %w", len(pkt), ErrMalformed)
	}
	spi := binary.BigEndian.Uint32(pkt)
	in := p.tab.Load().in[spi]
	if in == nil {
		return nil, fmt.Errorf("SPI %#x: %w", spi, ErrNoSA)
	}
	inner, next, newest, err := in.open(pkt)
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
	if iso := p.isolated.Load(); iso != nil {
		if _, dst, _ := innerAddrs(inner); containsAny(*iso, dst) {
			return nil, fmt.Errorf("SPI %#x: inner destination %v is isolated (%v): %w", spi, dst, *iso, ErrPolicy)
		}
	}
	if newest && from.IsValid() && *in.out.remote.Load() != from {
		p.follow(in.out, from)
	}
	if in.deferred && !in.heard.Load() {
		p.heard(in)
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

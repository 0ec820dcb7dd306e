package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"

	"ferry/ipsec/dataplane"
)

// Wire sizes for AES-GCM-16 ESP (RFC 4106).
const (
	hdrLen  = 8  // SPI + sequence number
	ivLen   = 8  // explicit IV
	icvLen  = 16 // GCM tag
	saltLen = 4
	keyLen  = 32 + saltLen
	// Overhead is what ESP adds to an inner packet, at most (3 bytes of
	// padding to 4-byte alignment, pad length, next header).
	Overhead = hdrLen + ivLen + 3 + 2 + icvLen
)

// Next-header values (IANA protocol numbers) used in tunnel mode.
const (
	nextIPv4   = 4
	nextNoNext = 59 // dummy packet (RFC 4303 2.6): discard silently
)

// seqSoftMargin: how many packets before the counter wraps the soft
// "sequence" expiry fires, leaving IKE time to rekey.
const seqSoftMargin = 1 << 20

type aeadKey struct {
	aead cipher.AEAD
	salt [saltLen]byte
}

func newAEADKey(alg string, key []byte) (aeadKey, error) {
	if alg != dataplane.AlgAES256GCM16 {
		return aeadKey{}, fmt.Errorf("algorithm %q: only %s is supported", alg, dataplane.AlgAES256GCM16)
	}
	if len(key) != keyLen {
		return aeadKey{}, fmt.Errorf("%s key: %d bytes, want %d (key||salt)", alg, len(key), keyLen)
	}
	blk, err := aes.NewCipher(key[:32])
	if err != nil {
		return aeadKey{}, fmt.Errorf("aes key: %w", err)
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		return aeadKey{}, fmt.Errorf("gcm: %w", err)
	}
	k := aeadKey{aead: g}
	copy(k.salt[:], key[32:])
	return k, nil
}

// aad builds SPI||seq (4+4) or SPI||seq-hi||seq-lo (ESN, 4+4+4).
func aad(dst *[12]byte, spi uint32, seq uint64, esn bool) []byte {
	binary.BigEndian.PutUint32(dst[0:], spi)
	if !esn {
		binary.BigEndian.PutUint32(dst[4:], uint32(seq))
		return dst[:8]
	}
	binary.BigEndian.PutUint32(dst[4:], uint32(seq>>32))
	binary.BigEndian.PutUint32(dst[8:], uint32(seq))
	return dst[:12]
}

// outbound is the sending half of a CHILD_SA.
type outbound struct {
	spi    uint32
	key    aeadKey
	esn    bool
	remote atomic.Pointer[netip.AddrPort] // the peer's outer address; follows its NAT mapping
	seq    atomic.Uint64                  // last sequence number used
	maxSeq uint64
	life   *meter
}

func newOutbound(sa dataplane.ChildSA) (*outbound, error) {
	k, err := newAEADKey(sa.Alg, sa.OutKey)
	if err != nil {
		return nil, fmt.Errorf("outbound SA %#x: %w", sa.OutSPI, err)
	}
	o := &outbound{spi: sa.OutSPI, key: k, esn: sa.ESN, maxSeq: math.MaxUint32}
	o.remote.Store(&sa.Remote)
	if sa.ESN {
		o.maxSeq = math.MaxUint64
	}
	return o, nil
}

// seal turns buf[Headroom:Headroom+n] (an inner IPv4 packet placed there by
// the caller) into an ESP packet in buf. buf must have room for Overhead
// bytes more than Headroom+n. It returns the packet and the sequence number.
func (o *outbound) seal(buf []byte, n int) ([]byte, uint64, error) {
	seq := o.seq.Add(1)
	if seq > o.maxSeq || seq == 0 {
		return nil, seq, fmt.Errorf("SPI %#x: %w", o.spi, ErrSeqExhausted)
	}
	pad := (4 - (n+2)%4) % 4
	end := Headroom + n
	for i := 1; i <= pad; i++ {
		buf[end] = byte(i)
		end++
	}
	buf[end], buf[end+1] = byte(pad), nextIPv4
	end += 2
	binary.BigEndian.PutUint32(buf[0:], o.spi)
	binary.BigEndian.PutUint32(buf[4:], uint32(seq))
	binary.BigEndian.PutUint64(buf[8:], seq) // IV: the counter, unique per key
	var nonce [12]byte
	copy(nonce[:], o.key.salt[:])
	copy(nonce[4:], buf[8:16])
	var ad [12]byte
	pt := buf[Headroom:end]
	ct := o.key.aead.Seal(pt[:0], nonce[:], pt, aad(&ad, o.spi, seq, o.esn))
	return buf[:Headroom+len(ct)], seq, nil
}

// Headroom is where the inner packet starts in a buffer given to seal.
const Headroom = hdrLen + ivLen

// inbound is the receiving half of a CHILD_SA.
type inbound struct {
	spi      uint32
	key      aeadKey
	esn      bool
	tsLocal  []netip.Prefix // inner destinations we accept
	tsRemote []netip.Prefix // inner sources we accept
	life     *meter
	out      *outbound   // the same CHILD_SA's sending half: its peer follows ours
	deferred bool        // ChildSA.Deferred: its outbound waits for heard
	heard    atomic.Bool // an authenticated packet arrived on it
	mu       sync.Mutex
	win      *window
}

func newInbound(sa dataplane.ChildSA) (*inbound, error) {
	k, err := newAEADKey(sa.Alg, sa.InKey)
	if err != nil {
		return nil, fmt.Errorf("inbound SA %#x: %w", sa.InSPI, err)
	}
	w := sa.ReplayWindow
	if w == 0 {
		w = dataplane.DefaultReplayWindow
	}
	return &inbound{spi: sa.InSPI, key: k, esn: sa.ESN, win: newWindow(w),
		tsLocal: sa.TSLocal, tsRemote: sa.TSRemote}, nil
}

// open authenticates and decrypts pkt in place and records its sequence
// number. It returns the inner packet, the next-header value and whether
// the packet is the newest so far (its sequence number moved the window).
func (in *inbound) open(pkt []byte) ([]byte, byte, bool, error) {
	if len(pkt) < hdrLen+ivLen+2+icvLen {
		return nil, 0, false, fmt.Errorf("%d bytes, need at least %d: %w", len(pkt), hdrLen+ivLen+2+icvLen, ErrMalformed)
	}
	low := binary.BigEndian.Uint32(pkt[4:])
	in.mu.Lock()
	seq := uint64(low)
	if in.esn {
		seq = in.win.infer(low)
	}
	err := in.win.check(seq)
	in.mu.Unlock()
	if err != nil {
		return nil, 0, false, fmt.Errorf("SPI %#x seq %d: %w", in.spi, seq, err)
	}
	var nonce [12]byte
	copy(nonce[:], in.key.salt[:])
	copy(nonce[4:], pkt[8:16])
	var ad [12]byte
	ct := pkt[Headroom:]
	pt, err := in.key.aead.Open(ct[:0], nonce[:], ct, aad(&ad, in.spi, seq, in.esn))
	if err != nil {
		return nil, 0, false, fmt.Errorf("SPI %#x seq %d: %w", in.spi, seq, ErrAuth)
	}
	in.mu.Lock()
	newest := seq > in.win.top
	err = in.win.accept(seq)
	in.mu.Unlock()
	if err != nil {
		return nil, 0, false, fmt.Errorf("SPI %#x seq %d: %w", in.spi, seq, err)
	}
	inner, next, err := stripTrailer(pt, in.spi)
	return inner, next, newest, err
}

// stripTrailer removes padding, pad length and next header, checking the
// padding pattern 1, 2, 3, ... (RFC 4303 2.4).
func stripTrailer(pt []byte, spi uint32) ([]byte, byte, error) {
	if len(pt) < 2 {
		return nil, 0, fmt.Errorf("SPI %#x: trailer missing: %w", spi, ErrMalformed)
	}
	next, pad := pt[len(pt)-1], int(pt[len(pt)-2])
	body := len(pt) - 2 - pad
	if body < 0 {
		return nil, 0, fmt.Errorf("SPI %#x: pad length %d exceeds payload %d: %w", spi, pad, len(pt)-2, ErrMalformed)
	}
	for i := 0; i < pad; i++ {
		if pt[body+i] != byte(i+1) {
			return nil, 0, fmt.Errorf("SPI %#x: padding byte %d is %d: %w", spi, i, pt[body+i], ErrMalformed)
		}
	}
	return pt[:body], next, nil
}

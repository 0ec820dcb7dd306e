package esp

// window is an RFC 4303 anti-replay window over 64-bit sequence numbers
// (RFC 4303 Appendix A2 for ESN). It is a ring of 64-bit words; a window of
// size W keeps W sequence numbers below the highest one received. It is not
// safe for concurrent use: the inbound SA's mutex guards it.
type window struct {
	size   uint64   // W, in packets
	top    uint64   // highest authenticated sequence number; 0 = none yet
	bitmap []uint64 // ring; bit (s % (64*len)) marks s as received
}

func newWindow(size uint32) *window {
	words := (uint64(size)+63)/64 + 1 // one spare word so clearing ahead is safe
	return &window{size: uint64(size), bitmap: make([]uint64, words)}
}

// infer returns the full 64-bit sequence number for the 32 low bits seen on
// the wire when ESN is in use (RFC 4303 Appendix A2.2).
func (w *window) infer(low uint32) uint64 {
	tl, th := uint32(w.top), uint32(w.top>>32)
	wm1 := uint32(w.size - 1)
	if tl >= wm1 {
		if low >= tl-wm1 {
			return uint64(th)<<32 | uint64(low)
		}
		return uint64(th+1)<<32 | uint64(low)
	}
	if low >= tl-wm1 && th > 0 { // tl-wm1 wrapped: low is from the previous block
		return uint64(th-1)<<32 | uint64(low)
	}
	return uint64(th)<<32 | uint64(low)
}

// check tells whether seq may be accepted, without recording it.
func (w *window) check(seq uint64) error {
	switch {
	case seq == 0:
		return ErrTooOld // sequence numbers start at 1
	case seq > w.top:
		return nil
	case w.top-seq >= w.size:
		return ErrTooOld
	}
	if w.bitmap[w.index(seq)]&w.bit(seq) != 0 {
		return ErrReplay
	}
	return nil
}

// accept records seq after its ICV was verified; it rechecks first.
func (w *window) accept(seq uint64) error {
	if err := w.check(seq); err != nil {
		return err
	}
	if seq > w.top {
		w.advance(seq)
	}
	w.bitmap[w.index(seq)] |= w.bit(seq)
	return nil
}

// advance moves the top to seq, clearing the words it passes over.
func (w *window) advance(seq uint64) {
	n := uint64(len(w.bitmap))
	cur, next := w.top/64, seq/64
	if next-cur >= n {
		clear(w.bitmap)
	} else {
		for i := cur + 1; i <= next; i++ {
			w.bitmap[i%n] = 0
		}
	}
	w.top = seq
}

func (w *window) index(seq uint64) uint64 { return (seq / 64) % uint64(len(w.bitmap)) }
func (w *window) bit(seq uint64) uint64   { return 1 << (seq % 64) }

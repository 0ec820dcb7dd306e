package esp

import (
	"errors"
	"testing"
)

func TestWindowRefusesDuplicatesAndOldNumbers(t *testing.T) {
	w := newWindow(128)
	for _, s := range []uint64{1, 2, 5, 200} {
		if err := w.accept(s); err != nil {
			t.Fatalf("accept(%d) = %v", s, err)
		}
	}
	for _, tc := range []struct {
		seq  uint64
		want error
	}{
		{200, ErrReplay}, {5, ErrTooOld}, {72, ErrTooOld}, {73, nil}, {199, nil}, {0, ErrTooOld}, {1000, nil},
	} {
		if err := w.check(tc.seq); !errors.Is(err, tc.want) {
			t.Errorf("check(%d) = %v, want %v", tc.seq, err, tc.want)
		}
	}
	if err := w.accept(150); err != nil {
		t.Fatal(err)
	}
	if err := w.accept(150); !errors.Is(err, ErrReplay) {
		t.Errorf("second accept(150) = %v, want ErrReplay", err)
	}
}

func TestWindowForgetsBitsWhenItSlides(t *testing.T) {
	w := newWindow(64)
	if err := w.accept(10); err != nil {
		t.Fatal(err)
	}
	// Jump far ahead: 10 + k*64*len(bitmap) shares 10's bit; it must be new.
	far := 10 + uint64(64*len(w.bitmap))*3
	if err := w.accept(far); err != nil {
		t.Fatalf("accept(%d) after a jump = %v", far, err)
	}
	if err := w.accept(far - 63); err != nil {
		t.Errorf("accept(%d) inside the window = %v", far-63, err)
	}
}

func TestESNInfersHighBitsAcrossRollover(t *testing.T) {
	w := newWindow(128)
	top := uint64(1)<<32 - 10
	if err := w.accept(top); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		low  uint32
		want uint64
	}{
		{0xfffffff0, top - 6}, // late packet of the same block
		{3, 1<<32 | 3},        // the counter wrapped at the sender
		{0xfffffff7, top + 1}, // next in the same block
	} {
		if got := w.infer(tc.low); got != tc.want {
			t.Errorf("infer(%#x) with top %#x = %#x, want %#x", tc.low, top, got, tc.want)
		}
	}
	if err := w.accept(1<<32 | 3); err != nil {
		t.Fatal(err)
	}
	// Now top's low bits are 3 < W-1: a late 0xfffffffe belongs to block 0.
	if got := w.infer(0xfffffffe); got != 0xfffffffe {
		t.Errorf("infer(0xfffffffe) after rollover = %#x, want 0xfffffffe", got)
	}
	if got := w.infer(4); got != 1<<32|4 {
		t.Errorf("infer(4) after rollover = %#x", got)
	}
}

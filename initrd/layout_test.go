package initrd

import (
	"bytes"
	"testing"
)

func TestContainsAtFindsPatternAcrossPartBoundaries(t *testing.T) {
	data := make([]byte, 5<<20+7)
	for _, at := range []int{0, 1<<20 - 2, 2<<20 + 1, len(data) - 4} {
		d := append([]byte{}, data...)
		copy(d[at:], magicLZ4)
		ok, err := containsAt(bytes.NewReader(d), 0, int64(len(d)), []byte(magicLZ4))
		if err != nil || !ok {
			t.Errorf("magic at %#x not found: %v", at, err)
		}
		if ok, _ := containsAt(bytes.NewReader(d), int64(at+1), int64(len(d)), []byte(magicLZ4)); ok {
			t.Errorf("magic at %#x found when searching after it", at)
		}
	}
	if ok, _ := containsAt(bytes.NewReader(data), 0, int64(len(data)), []byte(magicLZ4)); ok {
		t.Error("found in zeros")
	}
}

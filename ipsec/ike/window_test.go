package ike

import (
	"testing"
	"time"
)

func TestRetransmittedRequestIsAnsweredFromCache(t *testing.T) {
	var w inbound
	if w.check(0) != process {
		t.Fatal("first request not processed")
	}
	w.answered([][]byte{[]byte("resp0")})
	if w.check(0) != resend {
		t.Error("retransmitted request 0 not answered from cache")
	}
	if w.check(1) != process {
		t.Error("request 1 not processed")
	}
	if w.check(5) != drop {
		t.Error("request 5, outside the window of 1, not dropped")
	}
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := Backoff{Base: time.Second, Max: 5 * time.Second, Tries: 5}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := b.Delay(i + 1); got != w {
			t.Errorf("Delay(%d) = %s, want %s", i+1, got, w)
		}
	}
}

package ike

import (
	"crypto/rand"
	"time"

	"ferry/ipsec/ikev2"
)

// cookieJar holds the responder's current and previous cookie secrets
// (RFC 7296 section 2.6), rotated every two minutes.
type cookieJar struct {
	cur, prev ikev2.CookieSecret
	rotated   time.Time
}

func (j *cookieJar) rotate() {
	j.prev = j.cur
	k := make([]byte, 32)
	rand.Read(k)
	j.cur = ikev2.CookieSecret{Version: j.prev.Version + 1, Key: k}
	j.rotated = time.Now()
}

func (j *cookieJar) maybeRotate(now time.Time) {
	if now.Sub(j.rotated) > 2*time.Minute {
		j.rotate()
	}
}

package ike

import "bytes"

// Simultaneous rekeys (RFC 7296 sections 2.8.1 and 2.8.2): both ends may
// rekey the same SA at once, each answering the other's CREATE_CHILD_SA
// while its own is in flight. Both exchanges then create an SA; the one
// whose exchange used the lowest of the four nonces is redundant and is
// deleted by the end that initiated it, and the end that initiated the
// surviving one deletes the old SA. Both ends compare the same four
// nonces, so they agree on the survivor without another message.

// rival is the peer's CHILD_SA rekey that we answered while ours of the
// same CHILD_SA was in flight: the child it made and its lowest nonce.
type rival struct {
	nonce []byte
	child *child
}

// ikeRival is the same for an IKE SA rekey: the IKE SA the peer's
// exchange made.
type ikeRival struct {
	nonce []byte
	sa    *ikeSA
}

// lowest is the lower of an exchange's two nonces, compared octet by
// octet; a shorter nonce that is a prefix of the other is lower.
func lowest(ni, nr []byte) []byte {
	if bytes.Compare(ni, nr) < 0 {
		return ni
	}
	return nr
}

// redundant reports whether our exchange, with nonces ni and nr, made the
// redundant SA against a rival exchange whose lowest nonce is theirs.
func redundant(ni, nr, theirs []byte) bool {
	return bytes.Compare(lowest(ni, nr), theirs) < 0
}

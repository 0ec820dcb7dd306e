package ike

import "ferry/ipsec/ikev2"

// Lookups of a decoded message's payloads, shared by every exchange.

// findNotify is the first notification of kind in ps, or nil.
func findNotify(ps []ikev2.Payload, kind ikev2.NotifyType) *ikev2.Notify {
	for _, p := range ps {
		if n, ok := p.(*ikev2.Notify); ok && n.Kind == kind {
			return n
		}
	}
	return nil
}

// errorNotify is the first error notification in ps (types below
// 16384), or nil.
func errorNotify(ps []ikev2.Payload) *ikev2.Notify {
	for _, p := range ps {
		if n, ok := p.(*ikev2.Notify); ok && n.Kind.IsError() {
			return n
		}
	}
	return nil
}

// find is the first payload of type T in ps, or T's zero value.
func find[T ikev2.Payload](ps []ikev2.Payload) T {
	var zero T
	for _, p := range ps {
		if t, ok := p.(T); ok {
			return t
		}
	}
	return zero
}

// findTS is the initiator's (TSi) or the responder's (TSr) traffic
// selectors payload in ps, or nil.
func findTS(ps []ikev2.Payload, responder bool) *ikev2.TS {
	for _, p := range ps {
		if t, ok := p.(*ikev2.TS); ok && t.Responder == responder {
			return t
		}
	}
	return nil
}

package fleet

import (
	"context"
	"net/netip"

	"ferry/ipsec/dataplane"
)

// nullPlane negotiates CHILD_SAs without carrying them: the fleet plays
// the control plane of many servers in one process.
type nullPlane struct{ ch chan dataplane.ExpireEvent }

func newNullPlane() nullPlane { return nullPlane{ch: make(chan dataplane.ExpireEvent)} }

func (nullPlane) Install(context.Context, dataplane.ChildSA) error { return nil }
func (nullPlane) Remove(context.Context, uint32, uint32) error     { return nil }
func (nullPlane) Counters(context.Context, uint32, uint32) (dataplane.SACounters, error) {
	return dataplane.SACounters{}, nil
}
func (p nullPlane) Expire() <-chan dataplane.ExpireEvent { return p.ch }
func (nullPlane) BypassSocket(uintptr) error             { return nil }
func (nullPlane) Close() error                           { return nil }
func (nullPlane) Teardown(context.Context) error         { return nil }
func (nullPlane) Guard(context.Context, []netip.Prefix, netip.Addr) error {
	return nil
}

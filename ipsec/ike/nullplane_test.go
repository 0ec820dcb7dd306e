package ike

import (
	"context"
	"net/netip"

	"ferry/ipsec/dataplane"
)

// nullPlane accepts every CHILD_SA and moves no packets: the benchmark
// measures IKE alone.
type nullPlane struct{ ch chan dataplane.ExpireEvent }

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

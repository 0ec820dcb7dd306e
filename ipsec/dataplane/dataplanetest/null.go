// Package dataplanetest holds a dataplane.DataPlane that carries nothing,
// for what exercises IKE alone: the IKE tests and benchmarks, and the
// fleet simulation that plays the control plane of many servers in one
// process.
package dataplanetest

import (
	"context"
	"net/netip"

	"ferry/ipsec/dataplane"
)

// Null accepts every CHILD_SA and moves no packets; its Expire channel
// never delivers. Make one with NewNull.
type Null struct{ ch chan dataplane.ExpireEvent }

// NewNull is a Null with its (silent) expire channel.
func NewNull() Null { return Null{ch: make(chan dataplane.ExpireEvent)} }

func (Null) Install(context.Context, dataplane.ChildSA) error { return nil }
func (Null) Remove(context.Context, uint32, uint32) error     { return nil }
func (Null) Counters(context.Context, uint32, uint32) (dataplane.SACounters, error) {
	return dataplane.SACounters{}, nil
}
func (p Null) Expire() <-chan dataplane.ExpireEvent                  { return p.ch }
func (Null) BypassSocket(uintptr) error                              { return nil }
func (Null) Close() error                                            { return nil }
func (Null) Teardown(context.Context) error                          { return nil }
func (Null) Guard(context.Context, []netip.Prefix, netip.Addr) error { return nil }

package netboot

import (
	"context"
	"net"
	"slices"
)

// StaticPolicy boots the same spec on every listed MAC (or on any MAC when
// MACs is empty). It is for labs and tests; the lender has its own Policy.
type StaticPolicy struct {
	Spec BootSpec
	MACs []net.HardwareAddr
}

func (p *StaticPolicy) Admit(ctx context.Context, mac net.HardwareAddr) error {
	if len(p.MACs) == 0 || slices.ContainsFunc(p.MACs, func(m net.HardwareAddr) bool { return m.String() == mac.String() }) {
		return nil
	}
	return ErrUnknownMachine
}

func (p *StaticPolicy) Boot(ctx context.Context, f Fetch) (*BootSpec, error) {
	if err := p.Admit(ctx, f.MAC); err != nil {
		return nil, err
	}
	s := p.Spec
	return &s, nil
}

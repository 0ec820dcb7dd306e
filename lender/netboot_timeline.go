package lender

import (
	"context"

	"ferry/api"
	"ferry/netboot"
	"ferry/store"
)

// NetbootPhasePrefix starts the names of the phases the lender records
// itself from what its netboot service saw ("pxe-dhcp-firmware",
// "pxe-script", "pxe-initrd", ...): the part of a transfer before image A
// runs, which no agent can report.
const NetbootPhasePrefix = "pxe-"

// Observed records a netboot step of a server with a boot among its
// phases (netboot.Observer). Steps of machines without one are not
// recorded (netboot answers none of them anyway).
func (p policy) Observed(e netboot.Event) { p.m.netbootStep(e) }

func (m *Manager) netbootStep(e netboot.Event) {
	m.mu.Lock()
	bs, ok := m.boots[e.MAC.String()]
	m.mu.Unlock()
	if !ok {
		return
	}
	rep := api.PhaseReport{LeaseID: bs.LeaseID, ServerID: bs.ServerID, Phase: NetbootPhasePrefix + e.Step,
		Start: e.Start.UTC(), End: e.End.UTC(), Bytes: e.Bytes}
	if e.Err != nil {
		rep.Error = e.Err.Error()
	}
	err := m.st.Update(context.Background(), func(tx store.Tx) error {
		mem, err := getMember(tx, bs.LeaseID, bs.index)
		if err != nil || len(mem.Phases) >= maxPhases {
			return err
		}
		mem.Phases = append(mem.Phases, rep)
		return putMember(tx, bs.LeaseID, bs.index, mem)
	})
	if err != nil {
		m.log.Warn("netboot step not recorded", "lease", bs.LeaseID, "server", bs.ServerID, "step", e.Step, "err", err)
		return
	}
	m.metrics.phase(rep)
}

package lender

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"ferry/api"
	"ferry/netboot"
	"ferry/store"
)

// How a boot's binding was observed.
const (
	// ViaDHCP: the address the lender's own DHCP leased to the MAC and
	// sealed into the script URL (netboot mode dhcp).
	ViaDHCP = "dhcp-lease"
	// ViaScript: the address that fetched the script (netboot mode
	// proxydhcp, where another server gives the addresses).
	ViaScript = "script-fetch"
	// ViaEnroll: the address of the first enrollment (no netboot: the
	// operator carried the token to the server).
	ViaEnroll = "first-enrollment"
)

// Binding is what the lender itself observed of one boot of a server, and
// what the boot's enrollment must match. Nothing in it is what a client
// claims about itself. A hardware identity (a TPM's attestation key,
// observed at the first contact and proven at enrollment) would be one
// more fact here and one more check in match.
type Binding struct {
	MAC  string    `json:"mac"`
	Addr string    `json:"addr"`
	Via  string    `json:"via"`
	At   time.Time `json:"at"`
}

// Observed is what one enrollment request shows of its sender.
type Observed struct {
	MAC  string
	Addr netip.Addr
}

// match says why o is not the machine the boot is bound to ("" if it is).
func (b Binding) match(o Observed) string {
	if o.Addr.String() != b.Addr {
		return fmt.Sprintf("enrollment from %s, but this boot of %s is bound to %s (%s)", o.Addr, b.MAC, b.Addr, b.Via)
	}
	return ""
}

// Boot conflict kinds: the label of ferry_lender_boot_conflicts_total.
const (
	conflictScriptAddr  = "script-address"
	conflictSecondFetch = "second-fetch"
	conflictEnrollAddr  = "enroll-address"
	conflictSecondEnrol = "second-enrollment"
)

// conflictError refuses a request that put its boot in conflict, after
// the conflict is recorded.
func conflictError(reason string) error {
	return refuse(reasonConflict, "token", "boot in conflict, an operator must clear it: %s", reason)
}

// Boot states, in memory: what the next script fetch of a MAC means.
const (
	bootPending  = "pending"  // token minted, script not fetched yet
	bootFetched  = "fetched"  // the one script of this boot was served
	bootEnrolled = "enrolled" // the boot's token enrolled
)

// bootState is one server's current boot: what netboot may admit and the
// token whose record holds the binding.
type bootState struct {
	Boot
	index int
	hash  string
}

// fetchScript is netboot's script request for a MAC: the first of a boot
// binds the boot's token to what netboot observed and returns the boot's
// parameters; any other (a second fetch, or one from another address
// than the one the lender's DHCP leased) is a conflict.
func (m *Manager) fetchScript(ctx context.Context, f netboot.Fetch) (Boot, error) {
	mac := f.MAC.String()
	m.mu.Lock()
	bs, ok := m.boots[mac]
	m.mu.Unlock()
	if !ok {
		return Boot{}, netboot.ErrUnknownMachine
	}
	now := m.now().UTC()
	bind := Binding{MAC: mac, Addr: f.From.String(), Via: ViaScript, At: now}
	kind, reason := "", ""
	if f.Leased.IsValid() {
		bind.Addr, bind.Via = f.Leased.String(), ViaDHCP
		if f.From != f.Leased {
			kind, reason = conflictScriptAddr, fmt.Sprintf("script of %s fetched from %s, but the lender's DHCP leased %s to it", mac, f.From, f.Leased)
		}
	}
	err := m.st.Update(ctx, func(tx store.Tx) error {
		var tok tokenRec
		if err := tx.Get(store.Tokens, bs.hash, &tok); err != nil {
			return netboot.ErrUnknownMachine // withdrawn: the lease ended
		}
		if kind == "" && tok.Binding != nil {
			kind, reason = conflictSecondFetch, fmt.Sprintf("second script fetch in one boot of %s: first bound to %s (%s) at %s, again from %s",
				mac, tok.Binding.Addr, tok.Binding.Via, tok.Binding.At.Format(time.RFC3339), f.From)
		}
		if kind != "" {
			return markConflict(tx, bs.LeaseID, bs.index, reason, now)
		}
		tok.Binding = &bind
		return tx.Put(store.Tokens, bs.hash, tok)
	})
	if err != nil {
		return Boot{}, err
	}
	if kind != "" {
		m.conflicted(bs.Boot, kind, reason)
		return Boot{}, fmt.Errorf("%w: %s", netboot.ErrRefused, reason)
	}
	m.mu.Lock()
	if cur, ok := m.boots[mac]; ok && cur.hash == bs.hash {
		cur.State = bootFetched
		m.boots[mac] = cur
	}
	m.mu.Unlock()
	m.log.Info("boot bound", "lease", bs.LeaseID, "server", bs.ServerID, "mac", mac, "addr", bind.Addr, "via", bind.Via)
	return bs.Boot, nil
}

// markConflict, inside a transaction, ends a server's boot: its tokens
// are withdrawn, a certificate issued in it is revoked and its key is no
// longer shown to the borrower, and it stays in conflict, refusing every
// fetch and enrollment, until an operator clears it.
func markConflict(tx store.Tx, leaseID string, i int, reason string, now time.Time) error {
	mem, err := getMember(tx, leaseID, i)
	if err != nil {
		return err
	}
	// The boot's own token record stays, so that its later use is
	// refused as a conflict rather than as an unknown token.
	for _, h := range mem.Tokens {
		if h != mem.Boot {
			if err := tx.Delete(store.Tokens, h); err != nil {
				return err
			}
		}
	}
	mem.Tokens = nil
	if err := revokeMember(tx, mem, now); err != nil {
		return err
	}
	was := mem.Phase
	mem.Phase, mem.Conflict, mem.Error, mem.SPKIPin, mem.Certificate = PhaseConflict, reason, reason, "", ""
	if err := setServerError(tx, mem.MAC, reason, now); err != nil {
		return err
	}
	if err := recordEvent(tx, Event{At: now, Kind: EventState, MAC: mem.MAC, Lease: leaseID, Source: "lender",
		What: was + " -> " + PhaseConflict, Error: reason}); err != nil {
		return err
	}
	return putMember(tx, leaseID, i, mem)
}

// conflicted forgets the boot (netboot goes silent for the MAC), counts
// and logs the conflict once it is stored.
func (m *Manager) conflicted(b Boot, kind, reason string) {
	m.mu.Lock()
	delete(m.boots, b.MAC)
	m.mu.Unlock()
	m.metrics.conflict(kind)
	m.log.Warn("boot conflict: server refused until an operator clears it (ferry lender server clear)",
		"lease", b.LeaseID, "server", b.ServerID, "mac", b.MAC, "kind", kind, "reason", reason)
}

// ClearServer starts a new boot of a leased server, as an operator's
// decision: after a conflict, or for a boot that is stuck. The old boot's
// tokens are withdrawn and its certificate revoked; a fresh token is
// minted and the server is power cycled.
func (m *Manager) ClearServer(ctx context.Context, mac string) (api.LeaseServer, error) {
	mac, err := api.NormalizeMAC(mac)
	if err != nil {
		return api.LeaseServer{}, &api.FieldError{Field: "mac", Reason: err.Error()}
	}
	var srv Server
	var rec leaseRec
	idx := -1
	retryReturn := false
	err = m.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.Get(store.Servers, mac, &srv); err != nil {
			return &api.FieldError{Field: "mac", Reason: fmt.Sprintf("%s is not in the inventory", mac)}
		}
		var err error
		if srv.State != ServerLeased {
			return &api.FieldError{Field: "mac", Reason: fmt.Sprintf("%s is not lent", mac)}
		}
		if rec, _, err = getLease(tx, srv.LeaseID); err != nil {
			return &api.FieldError{Field: "mac", Reason: fmt.Sprintf("%s: lease %s: %v", mac, srv.LeaseID, err)}
		}
		for i, s := range rec.Servers {
			if s.MAC == mac {
				idx = i
			}
		}
		if idx < 0 {
			return &api.FieldError{Field: "mac", Reason: fmt.Sprintf("%s is not in lease %s", mac, rec.ID)}
		}
		if rec.State != api.LeaseActive {
			if rec.Servers[idx].Phase != PhasePowerError {
				return &api.FieldError{Field: "mac", Reason: fmt.Sprintf("%s: lease %s is not active", mac, srv.LeaseID)}
			}
			// The power off of a return failed: try the return again.
			retryReturn = true
			mem, err := getMember(tx, rec.ID, idx)
			if err != nil {
				return err
			}
			mem.Phase, mem.Error = PhaseReturning, ""
			rec.Servers[idx] = mem.LeaseServer
			if err := recordEvent(tx, Event{At: m.now().UTC(), Kind: EventState, MAC: mac, Lease: rec.ID, Source: "operator",
				What: "cleared: power-error -> returning, power off again"}); err != nil {
				return err
			}
			return putMember(tx, rec.ID, idx, mem)
		}
		if err := dropTokens(tx, rec.ID, idx); err != nil {
			return err
		}
		mem, err := getMember(tx, rec.ID, idx)
		if err != nil {
			return err
		}
		if err := revokeMember(tx, mem, m.now().UTC()); err != nil {
			return err
		}
		m.log.Info("server cleared: new boot", "lease", rec.ID, "server", mem.ID, "mac", mac, "was", mem.Phase, "conflict", mem.Conflict)
		if err := recordEvent(tx, Event{At: m.now().UTC(), Kind: EventState, MAC: mac, Lease: rec.ID, Source: "operator",
			What: "cleared: " + mem.Phase + " -> booting, new boot"}); err != nil {
			return err
		}
		mem.Phase, mem.Conflict, mem.Error, mem.SPKIPin, mem.CertSerial, mem.Earlier, mem.Certificate = PhaseBooting, "", "", "", "", nil, ""
		rec.Servers[idx] = mem.LeaseServer
		return putMember(tx, rec.ID, idx, mem)
	})
	if err != nil {
		return api.LeaseServer{}, err
	}
	if retryReturn {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), powerTimeout)
			defer cancel()
			if _, err := m.finishReturn(ctx, rec); err != nil {
				m.log.Error("return not finished; resumed at the next start", "lease", rec.ID, "err", err)
			}
		}()
		return rec.Servers[idx], nil
	}
	m.mu.Lock()
	delete(m.boots, mac)
	m.mu.Unlock()
	if err := m.issueTokens(ctx, rec, []int{idx}, true); err != nil {
		return api.LeaseServer{}, err
	}
	m.powerCycleLater(srv, rec.ID, idx)
	return rec.Servers[idx], nil
}

// powerCycleLater switches a server off and on in the background, so that
// it boots anew.
func (m *Manager) powerCycleLater(s Server, leaseID string, i int) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*powerTimeout)
		defer cancel()
		if err := m.powerAction(ctx, s, leaseID, "off"); err != nil {
			m.log.Error("power off for a new boot failed", "mac", s.MAC, "err", err)
		}
		if err := m.powerAction(ctx, s, leaseID, "on"); err != nil {
			m.log.Error("power on for a new boot failed; the server will not boot until powered by hand", "mac", s.MAC, "err", err)
			m.memberFailed(context.Background(), leaseID, i, PhaseBooting, PhasePowerError, err.Error())
		}
	}()
}

// resumeBoot rebuilds, after a restart, the boot state of a server of an
// active lease from the store: a booting server whose script was already
// fetched keeps that boot (it may be running A with the token); an
// enrolled one keeps its boot so that another fetch is a conflict.
// ok is false when the server needs a fresh token.
func (m *Manager) resumeBoot(ctx context.Context, rec leaseRec, i int) (ok bool, err error) {
	var mem member
	var tok tokenRec
	err = m.st.View(ctx, func(tx store.Tx) error {
		var err error
		if mem, err = getMember(tx, rec.ID, i); err != nil {
			return err
		}
		if mem.Boot == "" {
			return nil
		}
		if err := tx.Get(store.Tokens, mem.Boot, &tok); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	switch mem.Phase {
	case PhaseConflict, PhaseReturning, PhaseReturned, PhaseBootTimeout:
		return true, nil
	case PhasePowerError:
		return false, nil // a new boot: startBoots tries the power again
	case PhaseBooting:
		if tok.Binding == nil || tok.Binding.Via == ViaEnroll {
			return false, nil
		}
	}
	if mem.Boot == "" {
		return mem.Phase != PhaseBooting, nil
	}
	state := bootFetched
	if mem.Phase != PhaseBooting {
		state = bootEnrolled
	}
	m.mu.Lock()
	m.boots[mem.MAC] = bootState{Boot: Boot{MAC: mem.MAC, LeaseID: rec.ID, ServerID: mem.ID, State: state}, index: i, hash: mem.Boot}
	m.mu.Unlock()
	if state == bootFetched {
		m.watchBoot(rec.ID, i, mem.MAC, mem.Boot, max(tok.Expires.Sub(m.now()), 0))
	}
	return true, nil
}

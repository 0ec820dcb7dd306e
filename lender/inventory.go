package lender

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"ferry/api"
	"ferry/store"
)

// AddServer puts a server in the inventory, free, in its pool.
func (m *Manager) AddServer(ctx context.Context, s Server) (Server, error) {
	mac, err := api.NormalizeMAC(s.MAC)
	if err != nil {
		return Server{}, fmt.Errorf("mac: %w", err)
	}
	if s.Power == "" {
		return Server{}, fmt.Errorf("power: empty; name a driver (ipmitool, redfish, qmp, manual)")
	}
	if s.Pool == "" {
		s.Pool = "default"
	}
	s.MAC, s.ID, s.State, s.LeaseID = mac, serverID(mac), ServerFree, ""
	s.Phase, s.LastError, s.LastErrorAt, s.Note = "", "", time.Time{}, ""
	if m.power != nil {
		if _, err := m.power(s); err != nil {
			return Server{}, fmt.Errorf("power: %w", err)
		}
	}
	err = m.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.Get(store.Servers, mac, &Server{}); err == nil {
			return fmt.Errorf("mac: %s is already in the inventory", mac)
		}
		if err := tx.Put(store.Servers, mac, s); err != nil {
			return err
		}
		return recordEvent(tx, Event{At: m.now().UTC(), Kind: EventState, MAC: mac, Source: "operator",
			What: fmt.Sprintf("added to pool %s, power %s", s.Pool, s.Power)})
	})
	if err != nil {
		return Server{}, err
	}
	m.log.Info("server added", "mac", mac, "pool", s.Pool, "power", s.Power)
	return s, nil
}

// RemoveServer takes a free server out of the inventory.
func (m *Manager) RemoveServer(ctx context.Context, mac string) error {
	mac, err := api.NormalizeMAC(mac)
	if err != nil {
		return fmt.Errorf("mac: %w", err)
	}
	return m.st.Update(ctx, func(tx store.Tx) error {
		var s Server
		if err := tx.Get(store.Servers, mac, &s); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("mac: %s is not in the inventory", mac)
			}
			return err
		}
		if s.State != ServerFree && s.State != ServerMaintenance {
			return fmt.Errorf("mac: %s is lent in lease %s; return it first", mac, s.LeaseID)
		}
		return tx.Delete(store.Servers, mac)
	})
}

// Servers lists the inventory by MAC.
func (m *Manager) Servers(ctx context.Context) ([]Server, error) {
	var out []Server
	err := m.st.View(ctx, func(tx store.Tx) error {
		return tx.Each(store.Servers, "", func(_ string, dec func(any) error) error {
			var s Server
			if err := dec(&s); err != nil {
				return err
			}
			out = append(out, serverView(tx, s))
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].MAC < out[j].MAC })
	return out, err
}

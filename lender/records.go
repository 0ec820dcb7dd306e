package lender

import (
	"fmt"

	"ferry/api"
	"ferry/store"
)

// member is one server of a lease, stored apart from the lease so that an
// enrollment or a phase report rewrites one small record, not the lease.
type member struct {
	api.LeaseServer
	Tokens []string    `json:"tokens,omitempty"` // hashes of its unused tokens
	Root   api.NFSRoot `json:"root"`
	// Boot is the hash of the token of its current boot, whose record
	// keeps the boot's binding after the token is used.
	Boot string `json:"boot,omitempty"`
	// Earlier are the serials of its certificates renewed since (by a
	// lease extension), valid until their own end, revoked with the lease.
	Earlier []string `json:"earlier_certs,omitempty"`
}

func memberKey(leaseID string, i int) string { return fmt.Sprintf("%s/%05d", leaseID, i) }

// allLeases reads every lease record: those that read, and the first
// error of any that does not (the others are still returned).
func allLeases(tx store.Tx) ([]leaseRec, error) {
	var ids []string
	err := tx.Each(store.Leases, "", func(id string, _ func(any) error) error {
		ids = append(ids, id)
		return nil
	})
	var recs []leaseRec
	for _, id := range ids {
		rec, _, gerr := getLease(tx, id)
		if err == nil {
			err = gerr
		}
		if gerr == nil {
			recs = append(recs, rec)
		}
	}
	return recs, err
}

// getLease reads a lease with its servers.
func getLease(tx store.Tx, id string) (leaseRec, []member, error) {
	var rec leaseRec
	if err := tx.Get(store.Leases, id, &rec); err != nil {
		return rec, nil, err
	}
	var ms []member
	err := tx.Each(store.Members, id+"/", func(_ string, dec func(any) error) error {
		var m member
		if err := dec(&m); err != nil {
			return err
		}
		ms = append(ms, m)
		rec.Servers = append(rec.Servers, m.LeaseServer)
		return nil
	})
	return rec, ms, err
}

// putLease writes the lease without its servers and their roots (kept
// per member), so that reading the lease stays cheap for big leases.
func putLease(tx store.Tx, rec leaseRec) error {
	rec.Servers, rec.Request.Roots = nil, nil
	return tx.Put(store.Leases, rec.ID, rec)
}

func getMember(tx store.Tx, leaseID string, i int) (member, error) {
	var m member
	err := tx.Get(store.Members, memberKey(leaseID, i), &m)
	return m, err
}

func putMember(tx store.Tx, leaseID string, i int, m member) error {
	return tx.Put(store.Members, memberKey(leaseID, i), m)
}

// dropTokens withdraws the unused tokens of a lease's server.
func dropTokens(tx store.Tx, leaseID string, i int) error {
	m, err := getMember(tx, leaseID, i)
	if err != nil {
		return err
	}
	for _, h := range m.Tokens {
		if err := tx.Delete(store.Tokens, h); err != nil {
			return err
		}
	}
	m.Tokens = nil
	return putMember(tx, leaseID, i, m)
}

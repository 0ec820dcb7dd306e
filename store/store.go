// Package store keeps the managers' durable state: leases, servers,
// tokens, certificates, idempotency keys and events.
//
// Store is deliberately narrow: named tables of JSON values under string
// keys, read and written only inside transactions, so that every state
// change of a manager is one transaction and a manager killed at any moment
// restarts from a consistent state. A networked database (SQL rows or etcd
// keys under a prefix) can implement the same interface for a multi-host
// deployment; Open gives the embedded default on bbolt.
package store

import (
	"context"
	"errors"
)

// Table names a set of records.
type Table string

// The tables ferry's managers use.
const (
	Leases  Table = "leases"
	Servers Table = "servers"
	Tokens  Table = "tokens"
	Certs   Table = "certs"
	Idem    Table = "idempotency"
	Events  Table = "events"
	Images  Table = "images"
	Members Table = "members"
	// Roots is the borrower's preparation of each lent server's root,
	// by root name: apart from the lease records, which other steps
	// rewrite from copies read earlier.
	Roots Table = "roots"
)

// allTables lists the tables Open creates.
func allTables() []Table {
	return []Table{Leases, Servers, Tokens, Certs, Idem, Events, Images, Members, Roots}
}

// ErrNotFound is returned by Tx.Get for a missing key.
var ErrNotFound = errors.New("not found")

// Store runs transactions. Update's function runs once; Batch's may be
// run more than once and must be idempotent (it lets concurrent callers
// share one commit).
type Store interface {
	View(ctx context.Context, fn func(Tx) error) error
	Update(ctx context.Context, fn func(Tx) error) error
	Batch(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// Tx is one transaction. Values are JSON-encoded.
type Tx interface {
	// Get decodes the value under key into v, or returns ErrNotFound.
	Get(t Table, key string, v any) error
	Put(t Table, key string, v any) error
	Delete(t Table, key string) error
	// Each calls fn for every key with the prefix, in key order; decode
	// with the given function.
	Each(t Table, prefix string, fn func(key string, decode func(v any) error) error) error
	// Append stores v under the next sequence number of t and returns it.
	Append(t Table, v any) (uint64, error)
}

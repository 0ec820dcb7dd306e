package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bolt is the embedded Store: one file, fsynced commits.
type Bolt struct {
	db   *bolt.DB
	path string
}

// Open opens (creating, mode 0600) the store file at path. It fails
// after a second if another process holds the file.
func Open(path string) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, t := range allTables() {
			if _, err := tx.CreateBucketIfNotExists([]byte(t)); err != nil {
				return fmt.Errorf("create table %s: %w", t, err)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Bolt{db: db, path: path}, nil
}

// Close closes the file.
func (b *Bolt) Close() error { return b.db.Close() }

// View runs a read-only transaction.
func (b *Bolt) View(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// Update runs a read-write transaction, committed (fsynced) when fn
// returns nil and rolled back otherwise.
func (b *Bolt) Update(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// Batch is Update for concurrent callers: their functions share commits.
func (b *Bolt) Batch(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.Batch(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

type boltTx struct{ tx *bolt.Tx }

func (t boltTx) bucket(name Table) (*bolt.Bucket, error) {
	b := t.tx.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("store: no table %q", name)
	}
	return b, nil
}

func (t boltTx) Get(name Table, key string, v any) error {
	b, err := t.bucket(name)
	if err != nil {
		return err
	}
	data := b.Get([]byte(key))
	if data == nil {
		return fmt.Errorf("%s %q: %w", name, key, ErrNotFound)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("store: decode %s %q: %w", name, key, err)
	}
	return nil
}

func (t boltTx) Put(name Table, key string, v any) error {
	b, err := t.bucket(name)
	if err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s %q: %w", name, key, err)
	}
	return b.Put([]byte(key), data)
}

func (t boltTx) Delete(name Table, key string) error {
	b, err := t.bucket(name)
	if err != nil {
		return err
	}
	return b.Delete([]byte(key))
}

func (t boltTx) Each(name Table, prefix string, fn func(string, func(any) error) error) error {
	b, err := t.bucket(name)
	if err != nil {
		return err
	}
	c := b.Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		key := string(k)
		dec := func(out any) error {
			if err := json.Unmarshal(v, out); err != nil {
				return fmt.Errorf("store: decode %s %q: %w", name, key, err)
			}
			return nil
		}
		if err := fn(key, dec); err != nil {
			return err
		}
	}
	return nil
}

func (t boltTx) Append(name Table, v any) (uint64, error) {
	b, err := t.bucket(name)
	if err != nil {
		return 0, err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("store: sequence of %s: %w", name, err)
	}
	return seq, t.Put(name, fmt.Sprintf("%020d", seq), v)
}

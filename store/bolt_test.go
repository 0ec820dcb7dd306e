package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

type rec struct{ N int }

func TestFailedUpdateLeavesNothingBehind(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = s.Update(ctx, func(tx Tx) error {
		if err := tx.Put(Leases, "a", rec{1}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	err = s.View(ctx, func(tx Tx) error { return tx.Get(Leases, "a", &rec{}) })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after rollback = %v, want ErrNotFound", err)
	}
}

func TestCommittedRecordsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx Tx) error {
		for i := range 3 {
			if _, err := tx.Append(Events, rec{i}); err != nil {
				return err
			}
		}
		return tx.Put(Servers, "s1", rec{7})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []int
	err = s.View(ctx, func(tx Tx) error {
		var r rec
		if err := tx.Get(Servers, "s1", &r); err != nil || r.N != 7 {
			t.Errorf("server s1 = %v, %v; want 7", r, err)
		}
		return tx.Each(Events, "", func(_ string, dec func(any) error) error {
			var e rec
			if err := dec(&e); err != nil {
				return err
			}
			got = append(got, e.N)
			return nil
		})
	})
	if err != nil || len(got) != 3 || got[0] != 0 || got[2] != 2 {
		t.Fatalf("events after reopen = %v, %v; want [0 1 2] in order", got, err)
	}
}

func TestSecondOpenOfHeldStoreFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := Open(path); err == nil {
		s2.Close()
		t.Fatal("second Open of a held store succeeded")
	}
}

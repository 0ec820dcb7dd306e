//go:build !linux

package keeper

import "errors"

// HoldInMemory needs Linux's oom_score_adj and mlockall.
func HoldInMemory(string) error { return errors.New("no oom_score_adj or mlockall here") }

package keeper

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// HoldInMemory exempts this process from the OOM killer and locks its
// memory in RAM (memory.go says why). proc is where proc is mounted. Each
// step is tried; the error names those that failed: the keeper still
// runs without them, as it did before, and says so.
func HoldInMemory(proc string) error {
	var errs []error
	p := filepath.Join(proc, "self", "oom_score_adj")
	if err := os.WriteFile(p, []byte(strconv.Itoa(oomNever)), 0); err != nil {
		errs = append(errs, fmt.Errorf("oom_score_adj %d: %w", oomNever, err))
	}
	// MCL_FUTURE: what the Go runtime maps later is locked too;
	// MCL_ONFAULT (Linux 4.4): as it is touched, not all at once.
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
		errs = append(errs, fmt.Errorf("mlockall: %w", err))
	}
	return errors.Join(errs...)
}

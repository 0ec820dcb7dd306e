//go:build !linux

package keeper

import (
	"errors"
	"os"
)

// MountBase is Linux-only.
func MountBase() error { return errors.New("keeper: MountBase needs Linux") }

func moveInto(*os.File) error { return errors.New("keeper: moving into a root needs Linux") }

func openRootDir(dir string) (*os.File, error) { return os.Open(dir) }

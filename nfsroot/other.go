//go:build !linux

package nfsroot

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
)

// The operations below are Linux-only; elsewhere they refuse, so that the
// portable parts (MountOptions, ParseMode) stay usable and testable.

func errNotLinux(op string) error { return errors.New("nfsroot: " + op + " needs Linux") }

// Mount is Linux-only.
func Mount(context.Context, Spec, string, *slog.Logger) error { return errNotLinux("Mount") }

// PlaceState is Linux-only.
func PlaceState(string, string, Mode, ...string) error { return errNotLinux("PlaceState") }

// SwitchRoot is Linux-only.
func SwitchRoot(string, string, []string) error { return errNotLinux("SwitchRoot") }

// ReopenConsole is Linux-only.
func ReopenConsole(string) error { return errNotLinux("ReopenConsole") }

// CheckSwitchRoot is Linux-only.
func CheckSwitchRoot(string, string) error { return errNotLinux("CheckSwitchRoot") }

// copyContents copies src to dst (sendfile is Linux's).
func copyContents(dst, src *os.File) error {
	_, err := io.Copy(dst, src)
	return err
}

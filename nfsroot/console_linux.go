package nfsroot

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// ReopenConsole makes path (e.g. /dev/console) the process's stdin, stdout
// and stderr, as busybox's switch_root -c does before exec'ing init.
func ReopenConsole(path string) error {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open(%q, O_RDWR|O_NOCTTY) = %w", path, err)
	}
	defer unix.Close(fd)
	for i := 0; i <= 2; i++ {
		if err := unix.Dup3(fd, i, 0); err != nil {
			return fmt.Errorf("dup3(%d, %d, 0) = %w", fd, i, err)
		}
	}
	return nil
}

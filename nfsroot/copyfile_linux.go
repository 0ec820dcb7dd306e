package nfsroot

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// copyContents copies src, from its start, to dst with sendfile(2): the
// kernel moves the pages from one file to the other once, where io.Copy
// reads them into a buffer and writes them out again (io.Copy's in-kernel
// copy_file_range refuses two file systems: the initramfs and /run). The
// binary is 20 MB and each pass over it counts under TCG. Where sendfile
// refuses before the first byte, io.Copy does it.
func copyContents(dst, src *os.File) error {
	var done int64
	for {
		n, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), nil, 1<<30)
		if n > 0 {
			done += int64(n)
		}
		switch {
		case err == nil && n == 0:
			return nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue
		case (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS)) && done == 0:
			_, err = io.Copy(dst, src)
			return err
		case err != nil:
			return err
		}
	}
}

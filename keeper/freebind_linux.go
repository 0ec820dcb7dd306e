package keeper

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenFreebind listens on addr with IP_FREEBIND (IPV6_FREEBIND): the
// address need not be on a link yet, and the socket stays bound while it
// leaves and comes back (the tunnel's virtual IP does, across reconnects).
func listenFreebind(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if network == "tcp6" {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}

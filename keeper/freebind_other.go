//go:build !linux

package keeper

import "net"

// listenFreebind is a plain listen where there is no IP_FREEBIND: the
// address must be present.
func listenFreebind(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

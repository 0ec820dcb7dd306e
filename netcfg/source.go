package netcfg

import (
	"fmt"
	"net"
)

// SourceAddr returns the local address the kernel would use to reach
// server, by connecting a UDP socket (which sends nothing) and reading its
// local address. An NFS client needs it for clientaddr=.
func SourceAddr(server net.IP) (net.IP, error) {
	if server == nil || server.IsUnspecified() {
		return nil, fmt.Errorf("source address for %v: no server address", server)
	}
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: server, Port: 2049})
	if err != nil {
		return nil, fmt.Errorf("source address for %v: %w", server, err)
	}
	defer c.Close()
	a, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok || a.IP == nil || a.IP.IsUnspecified() {
		return nil, fmt.Errorf("source address for %v: kernel chose %v", server, c.LocalAddr())
	}
	if v4 := a.IP.To4(); v4 != nil {
		return v4, nil
	}
	return a.IP, nil
}

//go:build !linux

package esp

import "net"

// Without Linux's UDP GSO and GRO every datagram is its own syscall.

func udpSegmentCmsg(oob []byte, size int) []byte { return nil }
func enableUDPGRO(c *net.UDPConn) bool           { return false }
func udpGROSize(oob []byte) int                  { return 0 }

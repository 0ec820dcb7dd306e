package esp

import (
	"encoding/binary"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpSegmentCmsg returns the UDP_SEGMENT control message (UDP GSO, Linux
// 4.18+): one sendmsg of n datagrams of size bytes each (the last may be
// shorter), cut by the kernel or the NIC. oob must hold 32 bytes.
func udpSegmentCmsg(oob []byte, size int) []byte {
	oob = oob[:unix.CmsgSpace(2)]
	clear(oob)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(size))
	return oob
}

// enableUDPGRO asks the kernel to hand this socket runs of same-sized
// datagrams from one sender as one read (UDP_GRO, Linux 5.0+); a GSO
// send from the peer then arrives whole. It reports whether it worked.
func enableUDPGRO(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
	}); err != nil {
		return false
	}
	return serr == nil
}

// udpGROSize returns the datagram size from a UDP_GRO control message,
// or 0 if the read was a single datagram.
func udpGROSize(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_UDP && m.Header.Type == unix.UDP_GRO && len(m.Data) >= 4 {
			return int(binary.NativeEndian.Uint32(m.Data))
		}
	}
	return 0
}

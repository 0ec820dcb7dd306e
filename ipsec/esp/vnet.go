package esp

import "encoding/binary"

// virtio_net_hdr (include/uapi/linux/virtio_net.h) is what a TUN device
// opened with IFF_VNET_HDR puts before every packet. It is what lets the
// kernel hand us one 64 KB TCP super-segment instead of 45 packets (TSO),
// and take one back (GRO): the per-packet syscalls, not AES-GCM, are what
// bounds user-space ESP. It is in host byte order.
const vnetHdrLen = 10

const (
	vnetNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM: checksum from csumStart is partial
	vnetGSONone   = 0
	vnetGSOTCPv4  = 1
)

type vnetHdr struct {
	flags, gsoType                         uint8
	hdrLen, gsoSize, csumStart, csumOffset uint16
}

func (h *vnetHdr) decode(b []byte) {
	h.flags, h.gsoType = b[0], b[1]
	h.hdrLen = binary.NativeEndian.Uint16(b[2:])
	h.gsoSize = binary.NativeEndian.Uint16(b[4:])
	h.csumStart = binary.NativeEndian.Uint16(b[6:])
	h.csumOffset = binary.NativeEndian.Uint16(b[8:])
}

func (h *vnetHdr) encode(b []byte) {
	b[0], b[1] = h.flags, h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffset)
}

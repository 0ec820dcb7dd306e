// Package esp is ferry's user-space ESP data plane: RFC 4303 ESP in tunnel
// mode with AES-GCM-16 (RFC 4106), always UDP-encapsulated (RFC 3948), over a
// TUN device that carries the inner IPv4 packets. It is for kernels without
// ESP (like strongSwan's kernel-libipsec) and implements
// dataplane.DataPlane.
//
// Outbound: packets the kernel routes into the TUN device are matched by
// inner destination against the remote traffic selectors of the installed
// SAs (longest prefix wins), sealed and sent on the owner's UDP socket.
// Inbound: the IKE daemon reads UDP port 4500, classifies each datagram
// with dataplane.Classify and passes ESP datagrams to Plane.Input (or lets
// ServeUDP do that loop), which authenticates, checks the anti-replay
// window, checks the inner addresses against the traffic selectors and
// writes the inner packet to the TUN device.
package esp

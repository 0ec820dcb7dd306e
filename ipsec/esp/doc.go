// Package esp is ferry's user-space ESP data plane: RFC 4303 ESP in tunnel
// mode with AES-GCM-16 (RFC 4106), always UDP-encapsulated (RFC 3948), over a
// TUN device that carries the inner IPv4 packets. It is for kernels without
// ESP (like strongSwan's kernel-libipsec) and implements
// dataplane.DataPlane.
//
// Outbound: packets the kernel routes into the TUN device are matched by
// inner destination against the remote traffic selectors of the installed
// SAs (longest prefix wins), sealed and sent on the owner's UDP socket.
// Inbound: Plane.ServeUDP reads the port-4500 socket the IKE daemon owns
// (ipsec/ike runs it in place of its own read loop there), classifies each
// datagram with dataplane.Classify and hands IKE messages back to the
// daemon; each ESP datagram is authenticated, checked against the
// anti-replay window and the inner addresses against the traffic
// selectors. This is the only inbound path.
//
// Offloads carry the bulk: outbound, the TUN device hands over a TCP
// flow's 64 KB super-segment, cut and sealed here and sent as one UDP GSO
// sendmsg; inbound, UDP_GRO brings such a run in one read and a flow's
// decrypted segments go to the TUN device as one super-segment. Without
// them (an old kernel, a device without offloads) the same code runs a
// packet at a time.
package esp

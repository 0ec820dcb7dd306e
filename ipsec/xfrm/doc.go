// Package xfrm is ferry's kernel ESP data plane: it installs CHILD_SAs as
// XFRM states (rfc4106(gcm(aes)), tunnel mode, espinudp encapsulation, an
// explicit anti-replay window with ESN) and policies (out, in, fwd with
// templates) through netlink, exempts the IKE socket with a per-socket
// bypass policy, and forwards the kernel's soft and hard expire messages as
// dataplane.ExpireEvents. It implements dataplane.DataPlane on Linux.
//
// The kernel needs esp4 (and gcm, seqiv, drbg: see docs/LAB.md); without it
// Install fails with ErrNoESP.
package xfrm

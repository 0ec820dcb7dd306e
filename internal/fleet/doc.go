// Package fleet plays many lent servers at once through the real managers:
// each one takes its address from the lender's DHCP handler, fetches its
// iPXE script, kernel and initrd from the lender's netboot HTTP handler
// from that address, enrolls at the lender's agent API over TLS with a
// fresh one-time key, and opens an IKEv2 tunnel with its one-time
// certificate to a gateway (ferry's or strongSwan's), which it then holds
// with DPD. It measures each step (rate, latency percentiles) so the
// managers' limits show without a rack of machines. The data plane is not
// played: the servers' CHILD_SAs are negotiated and held, not carried
// (ipsec/esp's benchmarks measure user-space ESP).
package fleet

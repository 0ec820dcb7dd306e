// Package fleet plays many lent servers at once through the real managers:
// each one takes its address from the lender's DHCP handler, fetches its
// iPXE script, kernel and initrd from the lender's netboot HTTP handler
// from that address, enrolls at the lender's agent API over TLS with a
// fresh one-time key, and opens an IKEv2 tunnel with its one-time
// certificate to a gateway (ferry's or strongSwan's), which it then holds
// with DPD. With ferry's gateway the lease comes from the real borrower
// manager (which asks the lender, allows the enrolled keys at the gateway
// and serves image B), and each tunnel carries data: a user-space ESP
// plane per server (esp.Plane, as image A runs it) on one shared TUN
// device (Ports), through which the server fetches image B over HTTPS
// with the agent's own fetch code (agent.FetchImageB). It measures each
// step (rate, latency percentiles) so the managers' limits show without a
// rack of machines.
package fleet

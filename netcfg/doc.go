// Package netcfg brings up the network interface of a lent server from the
// kernel's nfsroot "ip=" syntax, without the kernel's own autoconfiguration
// (Debian kernels are built without CONFIG_IP_PNP, so "ip=" on their command
// line does nothing unless user space honours it).
//
// ParseIP is pure and portable; it reads static configurations and
// ip=dhcp (with the kernel's synonyms on, any and both). Up (Linux)
// configures the link through netlink; for DHCP it runs a DHCPv4 exchange
// (github.com/insomniacslk/dhcp's nclient4, retransmissions doubling from
// one second, bounded by Config.DHCPWait) and applies what the ACK grants,
// checked by ConfigFromACK: the result is a static Config, which a later
// boot (image B) applies again so that it keeps the same address. Leases
// are recorded, not renewed. SourceAddr tells which local address the
// kernel would use to reach a server, which an NFS client needs for
// clientaddr=.
package netcfg

// Package netcfg brings up the network interface of a lent server from the
// kernel's nfsroot "ip=" syntax, without the kernel's own autoconfiguration
// (Debian kernels are built without CONFIG_IP_PNP, so "ip=" on their command
// line does nothing unless user space honours it).
//
// ParseIP is pure and portable; Up (Linux) configures the link through
// netlink; SourceAddr tells which local address the kernel would use to
// reach a server, which an NFS client needs for clientaddr=.
package netcfg

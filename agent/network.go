package agent

import (
	"context"
	"errors"
	"net"
	"time"

	"ferry/netcfg"
)

// DHCPRecord is A's DHCP lease as B receives it in the state.
type DHCPRecord struct {
	Server   string    `json:"server"`
	Seconds  int64     `json:"lease_seconds"`
	Obtained time.Time `json:"obtained"`
}

// Expires is when the lease ends.
func (r *DHCPRecord) Expires() time.Time {
	return r.Obtained.Add(time.Duration(r.Seconds) * time.Second)
}

// networkUp configures the NIC from the kernel's ip= syntax (Debian kernels
// have no IP_PNP, so ferry does what ip= would). A without ip= uses DHCP,
// as ip=dhcp would. B applies the static configuration A ended with, so it
// keeps A's address even when A got it from DHCP: the lender's DHCP
// server admits a server only until it enrolls, and the gateway and the
// borrower know it by that address.
func (a *Agent) networkUp(ctx context.Context) error {
	spec, ok := a.cmd.Get("ip")
	if !ok || spec == "" {
		spec = "dhcp"
	}
	if a.state != nil {
		if spec = a.state.IP; spec == "" {
			return errors.New("state: no ip= from A")
		}
	}
	cfg, err := netcfg.ParseIP(spec)
	if err != nil {
		return err
	}
	link, err := netcfg.Up(ctx, cfg, a.log)
	var noCarrier *netcfg.NoCarrierError
	if errors.As(err, &noCarrier) {
		// Some NICs report carrier late or never; the fetch that follows
		// fails with a clearer error if the link is really dead.
		a.log.Warn("no carrier yet, going on", "err", err)
	} else if err != nil {
		return err
	}
	a.mac, a.ipConfig, a.linkName = link.MAC.String(), link.Config.String(), link.Name
	a.log.Info("network up", "link", link.String())
	a.printAddress(link)
	return nil
}

// printAddress says on the console which address the server has and where
// it came from: the lender's operator and the lab scripts read it.
func (a *Agent) printAddress(link *netcfg.Link) {
	via := ""
	if gw := link.Config.Gateway; gw != nil {
		via = " via " + gw.String()
	}
	switch {
	case link.Lease != nil:
		l := link.Lease
		a.dhcp = &DHCPRecord{Server: ipString(l.Server), Seconds: int64(l.Duration / time.Second), Obtained: l.Obtained.UTC()}
		a.con.printf("ferry: address %s dev %s%s from dhcp server %s, lease %s until %s",
			link.Addr, link.Name, via, ipString(l.Server), l.Duration, a.dhcp.Expires().Format(time.RFC3339))
	case a.state != nil && a.state.DHCP != nil:
		d := a.state.DHCP
		a.dhcp = d
		a.con.printf("ferry: address %s dev %s%s kept from A's dhcp lease (server %s) until %s",
			link.Addr, link.Name, via, d.Server, d.Expires().Format(time.RFC3339))
	default:
		a.con.printf("ferry: address %s dev %s%s static", link.Addr, link.Name, via)
	}
}

// checkLeaseOutlastsLending warns, before A hands over to B, when A's DHCP
// lease ends before the one-time certificate (the lending): nobody renews
// it, so the lender's DHCP server could give the address to another
// machine while B still uses it.
func (a *Agent) checkLeaseOutlastsLending() {
	if a.dhcp == nil || a.ident == nil || len(a.ident.Certs) == 0 {
		return
	}
	until := a.ident.Certs[0].NotAfter
	if end := a.dhcp.Expires(); end.Before(until) {
		a.con.printf("ferry: warning: dhcp lease ends %s, before the lending (%s); nothing renews it: give leases at least as long as the lending (lender netboot dhcp_lease_time)",
			end.Format(time.RFC3339), until.UTC().Format(time.RFC3339))
		a.log.Warn("dhcp lease shorter than the lending", "lease_end", end, "lending_end", until)
	}
}

func ipString(ip net.IP) string {
	if ip == nil {
		return "?"
	}
	return ip.String()
}

package netcfg

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Lease is what a DHCPv4 server granted. ferry does not renew it: image A
// lives for minutes, and image B keeps the address as a static
// configuration, so the lender's DHCP server must grant leases at least as
// long as the lending (see docs/CONTRACT.md).
type Lease struct {
	Server   net.IP        // the server identifier (option 54)
	Duration time.Duration // the lease time (option 51); 0 if the server gave none
	Obtained time.Time     // when the ACK arrived
}

// Expires is when the lease ends; the zero time when it has no duration.
func (l *Lease) Expires() time.Time {
	if l == nil || l.Duration <= 0 {
		return time.Time{}
	}
	return l.Obtained.Add(l.Duration)
}

// String describes the lease for logs.
func (l *Lease) String() string {
	if l == nil {
		return "<no lease>"
	}
	return fmt.Sprintf("from %s for %s until %s", l.Server, l.Duration, l.Expires().UTC().Format(time.RFC3339))
}

// maxLeaseTime bounds option 51; "infinite" (0xffffffff) and anything
// longer than ten years is recorded as ten years.
const maxLeaseTime = 10 * 365 * 24 * time.Hour

// ConfigFromACK turns a DHCPACK into the static configuration it grants,
// with hint's DEVICE, wait bounds and HOSTNAME (the command line's host
// name wins over option 12). The ACK comes from the network: the address
// must be a usable unicast IPv4 address, the netmask contiguous, the
// router inside the subnet; a bad host name or DNS server is dropped, not
// fatal, and at most two DNS servers are kept (DNS0, DNS1). The result
// round-trips through ParseIP(String()).
func ConfigFromACK(ack *dhcpv4.DHCPv4, hint *Config) (*Config, *Lease, error) {
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		return nil, nil, errors.New("dhcp: not a DHCPACK")
	}
	c := &Config{Device: hint.Device, LinkWait: hint.LinkWait, CarrierWait: hint.CarrierWait}
	yi := ack.YourIPAddr.String()
	var err error
	if c.Client, err = parseV4(yi); err != nil || !usableHost(c.Client) {
		return nil, nil, fmt.Errorf("dhcp: ACK yiaddr %s: not a usable host address", yi)
	}
	if c.Mask, err = ackMask(ack, c.Client); err != nil {
		return nil, nil, err
	}
	subnet := &net.IPNet{IP: c.Client.Mask(c.Mask), Mask: c.Mask}
	if r := ack.Router(); len(r) > 0 {
		gw := r[0].To4()
		if gw == nil || !subnet.Contains(gw) || gw.Equal(c.Client) {
			return nil, nil, fmt.Errorf("dhcp: ACK option 3 router %v: not another address in the subnet %s", r[0], subnet)
		}
		c.Gateway = gw
	}
	for _, d := range ack.DNS() {
		if v4 := d.To4(); v4 != nil && usableHost(v4) && len(c.DNS) < 2 {
			c.DNS = append(c.DNS, v4)
		}
	}
	c.Hostname = hint.Hostname
	if h := ack.HostName(); c.Hostname == "" && checkHostname(h) == nil {
		c.Hostname = h
	}
	l := &Lease{Server: ack.ServerIdentifier().To4(), Duration: ack.IPAddressLeaseTime(0)}
	if l.Duration < 0 || l.Duration > maxLeaseTime {
		l.Duration = maxLeaseTime
	}
	return c, l, nil
}

// ackMask is option 1, or the classful default when the server sent none.
func ackMask(ack *dhcpv4.DHCPv4, client net.IP) (net.IPMask, error) {
	m := ack.SubnetMask()
	if m == nil {
		return parseMask("", client)
	}
	if n, bits := m.Size(); bits != 32 || n == 0 || n > 30 {
		return nil, fmt.Errorf("dhcp: ACK option 1 subnet mask %v: not a contiguous IPv4 netmask of /1 to /30", net.IP(m))
	}
	return m, nil
}

func usableHost(ip net.IP) bool {
	return !(ip.IsUnspecified() || ip.IsMulticast() || ip.Equal(net.IPv4bcast) || ip.IsLoopback())
}

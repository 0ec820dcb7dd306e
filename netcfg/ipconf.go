package netcfg

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Config is a static IPv4 configuration from the kernel's nfsroot syntax
//
//	ip=CLIENT:SERVER:GATEWAY:NETMASK:HOSTNAME:DEVICE:AUTOCONF[:DNS0[:DNS1[:NTP0]]]
//
// (Documentation/admin-guide/nfs/nfsroot.rst). AUTOCONF "off", "none" or
// empty is static configuration; "dhcp" and the kernel's synonyms "on",
// "any" and "both" set DHCP, when only HOSTNAME and DEVICE may be given
// (ip=dhcp, ip=::::HOST:DEV:dhcp) and the address comes from a DHCPv4
// server. bootp, rarp, dhcp6 and auto6 are refused (NotSupportedError).
type Config struct {
	// DHCP asks a DHCPv4 server for the address, netmask, router, DNS and
	// host name; Client, Server, Gateway and Mask are then unset.
	DHCP bool

	Client   net.IP     // this host's address (4 bytes); required
	Server   net.IP     // the NFS server; may be nil
	Gateway  net.IP     // default gateway; nil means no default route
	Mask     net.IPMask // 4 bytes; classful default when NETMASK is empty
	Hostname string     // may be empty
	Device   string     // empty: first non-loopback Ethernet link
	DNS      []net.IP   // DNS0 and DNS1 when given (recorded, not applied)
	NTP      net.IP     // NTP0 when given (recorded, not applied)

	// LinkWait bounds the wait for the device to appear (modules load
	// asynchronously); zero means DefaultLinkWait.
	LinkWait time.Duration
	// CarrierWait bounds the wait for carrier once the link is up; zero
	// means DefaultCarrierWait.
	CarrierWait time.Duration
	// DHCPWait bounds the whole DHCP exchange (DISCOVER to ACK, NAKs
	// restarting it); zero means DefaultDHCPWait.
	DHCPWait time.Duration
	// DHCPFirstTry is how long the first DISCOVER (or REQUEST) waits for
	// its answer; each retransmission waits twice as long as the one
	// before (RFC 2131 4.1). Zero means DefaultDHCPFirstTry.
	DHCPFirstTry time.Duration
}

// Default bounds for Up.
const (
	DefaultLinkWait    = 15 * time.Second
	DefaultCarrierWait = 10 * time.Second
	// DHCP: 1+2+4+8+16 s of retransmissions fit in the wait.
	DefaultDHCPWait     = 30 * time.Second
	DefaultDHCPFirstTry = time.Second
)

// NotSupportedError refuses an ip= autoconfiguration method that ferry
// recognises but does not implement (BOOTP, RARP, DHCPv6, IPv6 autoconf).
type NotSupportedError struct{ Method string }

func (e *NotSupportedError) Error() string {
	return fmt.Sprintf("autoconfiguration %q is not supported: give ip=dhcp or a static ip=CLIENT:SERVER:GATEWAY:NETMASK:HOSTNAME:DEVICE:off", e.Method)
}

// fieldNames lists the fields of ip=, in order, for error messages.
func fieldNames() [10]string {
	return [...]string{"CLIENT", "SERVER", "GATEWAY", "NETMASK", "HOSTNAME", "DEVICE", "AUTOCONF", "DNS0", "DNS1", "NTP0"}
}

// FieldError names the field of ip= that was refused.
type FieldError struct {
	Field string // CLIENT, SERVER, ...
	Value string
	Err   error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("ip=: field %s %q: %v", e.Field, e.Value, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// ParseIP parses the value of the kernel's ip= parameter (with or without
// the "ip=" prefix). "dhcp", "on", "any" and "both" (alone or as AUTOCONF)
// give a DHCP Config; bootp, rarp, dhcp6 and auto6 are refused with a
// *NotSupportedError; "off"/"none" alone means there is nothing to
// configure and is refused too.
func ParseIP(s string) (*Config, error) {
	fieldNames := fieldNames()
	s = strings.TrimPrefix(s, "ip=")
	if !strings.Contains(s, ":") {
		dhcp, err := checkAutoconf(s)
		if err != nil {
			return nil, &FieldError{Field: "AUTOCONF", Value: s, Err: err}
		}
		if dhcp {
			return &Config{DHCP: true}, nil
		}
		return nil, fmt.Errorf("ip=%q: static configuration needs at least CLIENT (ip=CLIENT:SERVER:GATEWAY:NETMASK:HOSTNAME:DEVICE:off), or use ip=dhcp", s)
	}
	f := strings.Split(s, ":")
	if len(f) > len(fieldNames) {
		return nil, fmt.Errorf("ip=%q: %d fields, at most %d (CLIENT:SERVER:GATEWAY:NETMASK:HOSTNAME:DEVICE:AUTOCONF:DNS0:DNS1:NTP0)", s, len(f), len(fieldNames))
	}
	for len(f) < len(fieldNames) {
		f = append(f, "")
	}
	dhcp, err := checkAutoconf(f[6])
	if err != nil {
		return nil, &FieldError{Field: "AUTOCONF", Value: f[6], Err: err}
	}
	if dhcp {
		return parseDHCP(f)
	}
	c := &Config{}
	if f[0] == "" {
		return nil, &FieldError{Field: "CLIENT", Value: "", Err: errors.New("required for static configuration")}
	}
	if c.Client, err = parseV4(f[0]); err != nil {
		return nil, &FieldError{Field: "CLIENT", Value: f[0], Err: err}
	}
	if c.Client.IsUnspecified() || c.Client.IsMulticast() || c.Client.Equal(net.IPv4bcast) || c.Client.IsLoopback() {
		return nil, &FieldError{Field: "CLIENT", Value: f[0], Err: errors.New("not a usable host address")}
	}
	for i, dst := range []*net.IP{&c.Server, &c.Gateway} {
		if f[1+i] == "" {
			continue
		}
		if *dst, err = parseV4(f[1+i]); err != nil {
			return nil, &FieldError{Field: fieldNames[1+i], Value: f[1+i], Err: err}
		}
	}
	if c.Mask, err = parseMask(f[3], c.Client); err != nil {
		return nil, &FieldError{Field: "NETMASK", Value: f[3], Err: err}
	}
	if err := checkHostname(f[4]); err != nil {
		return nil, &FieldError{Field: "HOSTNAME", Value: f[4], Err: err}
	}
	c.Hostname = f[4]
	if err := checkDevice(f[5]); err != nil {
		return nil, &FieldError{Field: "DEVICE", Value: f[5], Err: err}
	}
	c.Device = f[5]
	for i := 7; i <= 8; i++ {
		if f[i] == "" {
			continue
		}
		ip, err := parseV4(f[i])
		if err != nil {
			return nil, &FieldError{Field: fieldNames[i], Value: f[i], Err: err}
		}
		c.DNS = append(c.DNS, ip)
	}
	if f[9] != "" {
		if c.NTP, err = parseV4(f[9]); err != nil {
			return nil, &FieldError{Field: "NTP0", Value: f[9], Err: err}
		}
	}
	if c.Gateway != nil && !(&net.IPNet{IP: c.Client.Mask(c.Mask), Mask: c.Mask}).Contains(c.Gateway) {
		return nil, &FieldError{Field: "GATEWAY", Value: f[2], Err: fmt.Errorf("not in the client's subnet %s/%d", c.Client.Mask(c.Mask), ones(c.Mask))}
	}
	return c, nil
}

// checkAutoconf reports whether AUTOCONF s asks for DHCP; it refuses the
// methods ferry does not implement and unknown ones.
func checkAutoconf(s string) (dhcp bool, err error) {
	switch s {
	case "off", "none", "":
		return false, nil
	case "dhcp", "on", "any", "both":
		return true, nil
	case "bootp", "rarp", "dhcp6", "auto6":
		return false, &NotSupportedError{Method: s}
	}
	return false, errors.New("unknown method (want dhcp, on, any, both, off or none)")
}

// parseDHCP reads the fields of ip=...:dhcp: HOSTNAME and DEVICE only.
// The kernel would take a given CLIENT as a hint; ferry refuses it rather
// than guess whether the server or the command line should win.
func parseDHCP(f []string) (*Config, error) {
	names := fieldNames()
	for i, v := range f {
		if v != "" && i != 4 && i != 5 && i != 6 {
			return nil, &FieldError{Field: names[i], Value: v, Err: errors.New("not allowed with AUTOCONF dhcp (the DHCP server gives it): only HOSTNAME and DEVICE may be set")}
		}
	}
	if err := checkHostname(f[4]); err != nil {
		return nil, &FieldError{Field: "HOSTNAME", Value: f[4], Err: err}
	}
	if err := checkDevice(f[5]); err != nil {
		return nil, &FieldError{Field: "DEVICE", Value: f[5], Err: err}
	}
	return &Config{DHCP: true, Hostname: f[4], Device: f[5]}, nil
}

func parseV4(s string) (net.IP, error) {
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, errors.New("not an IP address")
	}
	v4 := ip.To4()
	if v4 == nil || strings.Contains(s, ":") {
		return nil, errors.New("not an IPv4 address (ip= is IPv4 only)")
	}
	return v4, nil
}

// parseMask accepts a dotted netmask or a prefix length (with or without a
// leading "/"). Empty gives the classful default, as the kernel does.
func parseMask(s string, client net.IP) (net.IPMask, error) {
	if s == "" {
		switch {
		case client[0] < 128:
			return net.CIDRMask(8, 32), nil
		case client[0] < 192:
			return net.CIDRMask(16, 32), nil
		default:
			return net.CIDRMask(24, 32), nil
		}
	}
	if p := strings.TrimPrefix(s, "/"); !strings.Contains(p, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 32 || p[0] == '+' || p[0] == '-' {
			return nil, errors.New("not a prefix length 0-32 nor a dotted netmask")
		}
		return net.CIDRMask(n, 32), nil
	}
	ip, err := parseV4(s)
	if err != nil {
		return nil, errors.New("not a prefix length 0-32 nor a dotted netmask")
	}
	m := net.IPMask(ip)
	if _, bits := m.Size(); bits == 0 {
		return nil, errors.New("netmask bits are not contiguous")
	}
	return m, nil
}

func ones(m net.IPMask) int { n, _ := m.Size(); return n }

func checkHostname(s string) error {
	if len(s) > 64 {
		return fmt.Errorf("%d bytes, at most 64", len(s))
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("character %q not allowed (letters, digits, '-', '.')", r)
		}
	}
	return nil
}

func checkDevice(s string) error {
	if len(s) > 15 {
		return fmt.Errorf("%d bytes, at most 15 (IFNAMSIZ)", len(s))
	}
	if s == "." || s == ".." {
		return errors.New("not an interface name")
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || r == '/' || r == ':' {
			return fmt.Errorf("character %q not allowed in an interface name", r)
		}
	}
	return nil
}

// Prefix is the client address with its netmask, e.g. 10.9.0.2/24.
func (c *Config) Prefix() *net.IPNet { return &net.IPNet{IP: c.Client, Mask: c.Mask} }

// String formats c back in the ip= syntax (without the "ip=" prefix);
// ParseIP(c.String()) gives c back.
func (c *Config) String() string {
	if c.DHCP {
		if c.Hostname == "" && c.Device == "" {
			return "dhcp"
		}
		return "::::" + c.Hostname + ":" + c.Device + ":dhcp"
	}
	ipStr := func(ip net.IP) string {
		if ip == nil {
			return ""
		}
		return ip.String()
	}
	f := []string{ipStr(c.Client), ipStr(c.Server), ipStr(c.Gateway), net.IP(c.Mask).String(), c.Hostname, c.Device, "off"}
	if len(c.DNS) > 0 || c.NTP != nil {
		var d0, d1 string
		if len(c.DNS) > 0 {
			d0 = c.DNS[0].String()
		}
		if len(c.DNS) > 1 {
			d1 = c.DNS[1].String()
		}
		f = append(f, d0, d1)
		if c.NTP != nil {
			f = append(f, c.NTP.String())
		}
	}
	return strings.Join(f, ":")
}

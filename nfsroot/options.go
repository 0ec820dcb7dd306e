package nfsroot

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Spec says which NFS export becomes the root.
type Spec struct {
	Server    string        // IP literal: an initramfs has no resolver
	Path      string        // exported path, absolute
	Version   string        // "4.1" (default), "4", "4.0", "4.2" or "3"
	Options   string        // extra comma-separated mount options
	Port      int           // NFS port; 0 = default (2049, or rpcbind for v3)
	MountPort int           // NFSv3 MOUNT port; 0 = ask rpcbind
	Timeout   time.Duration // how long Mount retries; 0 = DefaultMountTimeout
}

// DefaultMountTimeout bounds Mount's retries while the network settles.
const DefaultMountTimeout = 60 * time.Second

// MountOptions returns the arguments of mount(2) for spec: the file system
// type ("nfs4" or "nfs"), the source ("SERVER:PATH") and the text options
// the kernel's NFS client parses itself. clientAddr is the local address
// for NFSv4 callbacks (clientaddr=); nil leaves it to the kernel.
//
// NFSv3 gets nolock (an initramfs runs no statd) and TCP for both NFS and
// MOUNT. User options come last; they may not set vers, nfsvers, addr or
// clientaddr (ferry sets those) nor carry characters that could smuggle
// another option or a second argument.
func MountOptions(spec Spec, clientAddr net.IP) (fstype, source, data string, err error) {
	server := net.ParseIP(spec.Server)
	if server == nil {
		return "", "", "", fmt.Errorf("nfs server %q: not an IP address (an initramfs has no resolver; give the address)", spec.Server)
	}
	if err := checkPath(spec.Path); err != nil {
		return "", "", "", err
	}
	host := server.String()
	if server.To4() == nil {
		host = "[" + host + "]"
	}
	source = host + ":" + spec.Path
	user, err := userOptions(spec.Options)
	if err != nil {
		return "", "", "", err
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"port", spec.Port}, {"mountport", spec.MountPort}} {
		if p.v < 0 || p.v > 65535 {
			return "", "", "", fmt.Errorf("nfs %s %d: out of range 0-65535", p.name, p.v)
		}
	}
	var o []string
	switch v := spec.Version; v {
	case "", "4", "4.0", "4.1", "4.2":
		if v == "" {
			v = "4.1"
		}
		fstype = "nfs4"
		o = append(o, "vers="+v, "addr="+server.String())
		if clientAddr != nil {
			o = append(o, "clientaddr="+clientAddr.String())
		}
		if spec.MountPort != 0 {
			return "", "", "", fmt.Errorf("nfs mountport %d: NFSv4 has no MOUNT protocol (only NFSv3 takes mountport)", spec.MountPort)
		}
	case "3":
		fstype = "nfs"
		o = append(o, "vers=3", "addr="+server.String(), "nolock", "proto=tcp", "mountproto=tcp")
		if spec.MountPort != 0 {
			o = append(o, "mountport="+strconv.Itoa(spec.MountPort))
		}
	default:
		return "", "", "", fmt.Errorf("nfs version %q: want 3, 4, 4.0, 4.1 or 4.2", spec.Version)
	}
	if spec.Port != 0 {
		o = append(o, "port="+strconv.Itoa(spec.Port))
	}
	return fstype, source, strings.Join(append(o, user...), ","), nil
}

func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("nfs export path %q: not absolute", p)
	}
	for _, r := range p {
		if r < ' ' || r == 0x7f {
			return fmt.Errorf("nfs export path %q: control character %q", p, r)
		}
	}
	return nil
}

// userOptions splits and checks extra options: each is NAME or NAME=VALUE
// with a plain name and a value of letters, digits and ._:/+-.
func userOptions(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, o := range strings.Split(s, ",") {
		name, value, hasValue := strings.Cut(o, "=")
		if name == "" {
			return nil, fmt.Errorf("nfs options %q: empty option", s)
		}
		for _, r := range name {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
				return nil, fmt.Errorf("nfs options %q: option %q: character %q not allowed in a name", s, o, r)
			}
		}
		switch name {
		case "vers", "nfsvers", "addr", "clientaddr":
			return nil, fmt.Errorf("nfs options %q: %s is set by ferry (use the version and server settings)", s, name)
		}
		if hasValue {
			if value == "" {
				return nil, fmt.Errorf("nfs options %q: option %q: empty value", s, o)
			}
			for _, r := range value {
				if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:/+-", r)) {
					return nil, fmt.Errorf("nfs options %q: option %q: character %q not allowed in a value", s, o, r)
				}
			}
		}
		out = append(out, o)
	}
	return out, nil
}

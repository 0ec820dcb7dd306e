package lender

import (
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"ferry/configfile"
	"ferry/lenderca"
	"ferry/netboot"
	"ferry/pki"
)

// CheckSetup records in r what serving cfg and its first lease will need
// beyond the file itself: the lender CA and the agent listener's key pair,
// the m2m key pair, every borrower's CA, image A's kernel and initrd and
// the iPXE boot files, the netboot interface; certificates that end
// within 30 days and keys others may read are warnings. running is true
// for `serve --check` (a lender already serving the directory is then
// worth a warning, not an error: a reload is what is being checked).
func CheckSetup(cfg Config, r *configfile.Report, now time.Time, running bool) {
	if cfg.Dir == "" {
		return // reported by the file's own check
	}
	if fi, err := os.Stat(cfg.Dir); err != nil || !fi.IsDir() {
		r.Errorf("dir", cfg.Dir, "not a directory: make it with `ferry lender init`")
		return
	}
	ca, err := lenderca.Load(cfg.Dir)
	if err != nil {
		r.Errorf("dir", cfg.Dir, "lender CA: %v (ferry lender init makes it)", err)
	} else {
		warnings(r, "dir", cfg.Dir, nil, mustValidity(r, "dir", ca.Cert, now))
		pool := x509.NewCertPool()
		pool.AddCert(ca.Cert)
		certFile := filepath.Join(cfg.Dir, lenderca.TLSCertFile)
		at, renewing := now, false
		// serve renews this certificate itself (agentCert): its end is
		// a note, and the rest is checked as of a moment it is valid.
		if c, err := pki.LoadCertsFile(certFile); err == nil && c[0].NotAfter.Sub(now) < lenderca.TLSRenewBefore {
			renewing = true
			r.Infof("dir", cfg.Dir, "%s ends %s: ferry lender serve renews it (same key and names, two more years) when it starts, on reload, or while serving",
				certFile, c[0].NotAfter.UTC().Format(time.RFC3339))
			if end := c[0].NotAfter.Add(-time.Second); end.Before(now) {
				at = end
			}
		}
		_, w, err := pki.CheckPair(certFile, filepath.Join(cfg.Dir, lenderca.TLSKeyFile), pki.UsageServer, pool, at)
		if renewing {
			w = slices.DeleteFunc(w, func(s string) bool { return strings.Contains(s, " expires on ") })
		}
		warnings(r, "dir", cfg.Dir, err, w)
	}
	if cfg.M2MCert != "" && cfg.M2MKey != "" {
		leaf, w, err := pki.CheckPair(cfg.M2MCert, cfg.M2MKey, pki.UsageServer, nil, now)
		warnings(r, "m2m_cert", cfg.M2MCert, err, w)
		if leaf != nil && len(leaf.IPAddresses)+len(leaf.DNSNames) == 0 {
			r.Errorf("m2m_cert", cfg.M2MCert, "names no address or DNS name: borrowers cannot verify the m2m listener")
		}
	}
	for _, bf := range cfg.borrowerFields() {
		if bf.b.CA == "" {
			continue
		}
		_, w, err := pki.CheckCAFile(bf.b.CA, now)
		warnings(r, bf.field+".ca", bf.b.CA, err, w)
	}
	if _, err := LoadBorrowers(cfg, slog.New(slog.DiscardHandler)); err != nil && !r.Failed() && len(cfg.borrowerConfigs()) > 0 {
		r.Add("borrowers", err)
	}
	for _, f := range [][2]string{{"agent_listen", cfg.AgentListen}, {"m2m_listen", cfg.M2MListen}} {
		localAddress(r, f[0], f[1])
	}
	if cfg.Netboot != nil {
		cfg.Netboot.checkSetup(r)
	}
	if alive(AdminSocket(cfg.Dir)) {
		if running {
			r.Warnf("dir", cfg.Dir, "a lender is serving this directory (%s answers)", AdminSocket(cfg.Dir))
		} else {
			r.Errorf("dir", cfg.Dir, "another lender serves this directory (%s answers): stop it first", AdminSocket(cfg.Dir))
		}
	}
}

// checkSetup checks what every netboot of a lease needs.
func (c NetbootConfig) checkSetup(r *configfile.Report) {
	for _, f := range [][2]string{{"netboot.kernel_a", c.KernelA}, {"netboot.initrd_a", c.InitrdA}} {
		if f[1] == "" {
			continue
		}
		if err := readableFile(f[1]); err != nil {
			r.Errorf(f[0], f[1], "image A: %v (every lent server boots it)", err)
		}
	}
	root := c.TFTPRoot
	field := "netboot.tftp_root"
	if root == "" {
		root, field = netboot.DefaultTFTPRoot, "netboot.tftp_root (default)"
	}
	var missing []string
	for _, f := range []string{netboot.DefaultBIOSFile, netboot.DefaultEFIFile} {
		if readableFile(filepath.Join(root, f)) != nil {
			missing = append(missing, f)
		}
	}
	switch len(missing) {
	case 2:
		r.Errorf(field, root, "no iPXE boot file (%s, %s): install Debian's ipxe package, or set tftp_root", netboot.DefaultBIOSFile, netboot.DefaultEFIFile)
	case 1:
		r.Warnf(field, root, "no %s: servers that boot that way (BIOS: undionly.kpxe, UEFI: ipxe.efi) will not", missing[0])
	}
	if c.Interface == "" {
		return
	}
	ifc, err := net.InterfaceByName(c.Interface)
	if err != nil {
		r.Errorf("netboot.interface", c.Interface, "no such interface on this host")
		return
	}
	sip, err := netip.ParseAddr(c.ServerIP)
	if err != nil {
		return
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr() == sip {
			return
		}
	}
	r.Warnf("netboot.server_ip", c.ServerIP, "not an address of interface %s (yet): TFTP and the iPXE script are served from it", c.Interface)
}

// localAddress warns when a listen address's host is not this host's.
func localAddress(r *configfile.Report, field, hostport string) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.IsUnspecified() || a.IsLoopback() {
		return
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return
	}
	for _, x := range addrs {
		if p, err := netip.ParsePrefix(x.String()); err == nil && p.Addr().Unmap() == a.Unmap() {
			return
		}
	}
	r.Warnf(field, hostport, "%s is not an address of this host (yet): listening will fail", host)
}

func readableFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() == 0 {
		return fmt.Errorf("%s: not a regular file with content", path)
	}
	_, err = f.Read(make([]byte, 1))
	if err == io.EOF {
		err = nil
	}
	return err
}

// alive reports whether a unix socket has a server behind it.
func alive(socket string) bool {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func mustValidity(r *configfile.Report, field string, c *x509.Certificate, now time.Time) []string {
	w, err := pki.CheckValidity(c, now)
	if err != nil {
		r.Errorf(field, nil, "%v", err)
	}
	return w
}

// warnings records err as an error and each of w as a warning.
func warnings(r *configfile.Report, field string, value any, err error, w []string) {
	if err != nil {
		r.Errorf(field, value, "%v", err)
	}
	for _, s := range w {
		r.Warnf(field, value, "%s", s)
	}
}

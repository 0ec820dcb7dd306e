// Command pxedemo runs a netboot.Server (DHCP or ProxyDHCP mode) with a
// fixed policy:
// every MAC given (or any, with none) boots one kernel and initrd with one
// command line. It is the lab's stand-in for `ferry lender` in
// scripts/pxe-test.sh, until the lender wires netboot into the binary.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"ferry/netboot"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pxedemo:", err)
		os.Exit(1)
	}
}

func run() error {
	iface := flag.String("iface", "", "interface to serve DHCP on (required)")
	server := flag.String("server-ip", "", "this host's IPv4 address on -iface (required)")
	prefix := flag.Int("prefix", 24, "subnet prefix length")
	first := flag.String("pool-first", "", "first address handed out (default: server + 1)")
	kernel := flag.String("kernel", "", "vmlinuz(A) (required)")
	initrd := flag.String("initrd", "", "initrd(A) (required)")
	cmdline := flag.String("cmdline", "console=ttyS0", "A's kernel command line")
	macs := flag.String("macs", "", "comma-separated MACs to boot (default: any)")
	tftpRoot := flag.String("tftp-root", netboot.DefaultTFTPRoot, "directory of the iPXE binaries")
	modeName := flag.String("mode", "dhcp", "dhcp or proxydhcp")
	flag.Parse()
	if *iface == "" || *server == "" || *kernel == "" || *initrd == "" {
		flag.Usage()
		return fmt.Errorf("-iface, -server-ip, -kernel and -initrd are required")
	}
	mode, err := netboot.ParseMode(*modeName)
	if err != nil {
		return err
	}
	cfg, err := config(*iface, *server, *first, *prefix, *tftpRoot)
	if err != nil {
		return err
	}
	cfg.Mode = mode
	p := &netboot.StaticPolicy{Spec: netboot.BootSpec{
		Kernel: netboot.Artifact{Path: *kernel}, Initrd: netboot.Artifact{Path: *initrd}, Cmdline: *cmdline}}
	for _, m := range strings.FieldsFunc(*macs, func(r rune) bool { return r == ',' }) {
		hw, err := net.ParseMAC(m)
		if err != nil {
			return fmt.Errorf("-macs %q: %w", m, err)
		}
		p.MACs = append(p.MACs, hw)
	}
	s, err := netboot.New(cfg, p)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.Serve(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func config(iface, server, first string, bits int, tftpRoot string) (netboot.Config, error) {
	ip, err := netip.ParseAddr(server)
	if err != nil {
		return netboot.Config{}, fmt.Errorf("-server-ip: %w", err)
	}
	lo := ip.Next()
	if first != "" {
		if lo, err = netip.ParseAddr(first); err != nil {
			return netboot.Config{}, fmt.Errorf("-pool-first: %w", err)
		}
	}
	hi := lo
	for range 15 {
		hi = hi.Next()
	}
	return netboot.Config{
		Interface: iface, ServerIP: ip, Mode: netboot.ModeDHCP, TFTPRoot: tftpRoot,
		Pool: netboot.Pool{First: lo, Last: hi, Prefix: netip.PrefixFrom(ip, bits).Masked(), Router: ip},
		Log:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, nil
}

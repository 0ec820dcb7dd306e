package lender

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"ferry/netboot"
)

// NetbootConfig is the optional "netboot" section of the lender config:
// where to serve DHCP/ProxyDHCP, TFTP and HTTP, and image A's files.
type NetbootConfig struct {
	Interface string `json:"interface"`
	ServerIP  string `json:"server_ip"`
	Mode      string `json:"mode"` // dhcp or proxydhcp
	PoolFirst string `json:"pool_first"`
	PoolLast  string `json:"pool_last"`
	Prefix    string `json:"prefix"`
	HTTPAddr  string `json:"http_addr"`
	TFTPRoot  string `json:"tftp_root"`
	KernelA   string `json:"kernel_a"`
	InitrdA   string `json:"initrd_a"`
	Cmdline   string `json:"cmdline"` // console options before the lease's parameters
}

// policy answers netboot for the lender: only servers with a pending
// boot are admitted, and every iPXE script gets a fresh token.
type policy struct {
	m   *Manager
	cfg NetbootConfig
}

// Admit lets a MAC netboot only while a lease waits for it to enroll. A
// refusal is logged here, at Info, because netboot's own silence is a
// Debug line: an operator must see why a machine gets no offer.
func (p policy) Admit(_ context.Context, mac net.HardwareAddr) error {
	if _, ok := p.m.BootFor(mac.String()); !ok {
		p.m.log.Info("netboot: no pending boot, not answering", "mac", mac.String())
		return netboot.ErrUnknownMachine
	}
	return nil
}

// Boot mints this boot's token (superseding earlier ones of the server)
// and returns image A with the bootstrap parameters.
func (p policy) Boot(ctx context.Context, mac net.HardwareAddr) (*netboot.BootSpec, error) {
	b, ok := p.m.BootFor(mac.String())
	if !ok {
		return nil, netboot.ErrUnknownMachine
	}
	b, err := p.m.reissue(ctx, b)
	if err != nil {
		return nil, err
	}
	return &netboot.BootSpec{Kernel: netboot.Artifact{Path: p.cfg.KernelA}, Initrd: netboot.Artifact{Path: p.cfg.InitrdA},
		Cmdline: p.cfg.Cmdline + " " + b.KernelParam}, nil
}

// reissue replaces the pending boot of a server with a new token.
func (m *Manager) reissue(ctx context.Context, b Boot) (Boot, error) {
	rec, err := m.leaseRec(ctx, b.LeaseID)
	if err != nil {
		return Boot{}, err
	}
	for i, s := range rec.Servers {
		if s.ID == b.ServerID {
			if err := m.issueTokens(ctx, rec, []int{i}, true); err != nil {
				return Boot{}, err
			}
			nb, _ := m.BootFor(s.MAC)
			return nb, nil
		}
	}
	return Boot{}, fmt.Errorf("netboot: server %s is no longer in lease %s", b.ServerID, b.LeaseID)
}

// netbootServer builds netboot's server from the config section.
func netbootServer(m *Manager, c NetbootConfig) (*netboot.Server, error) {
	ip, err := netip.ParseAddr(c.ServerIP)
	if err != nil {
		return nil, fmt.Errorf("netboot.server_ip: %w", err)
	}
	mode, err := netboot.ParseMode(c.Mode)
	if err != nil {
		return nil, fmt.Errorf("netboot.mode: %w", err)
	}
	cfg := netboot.Config{Interface: c.Interface, ServerIP: ip, Mode: mode, HTTPAddr: c.HTTPAddr,
		TFTPRoot: c.TFTPRoot, Log: m.log}
	if mode == netboot.ModeDHCP {
		first, err1 := netip.ParseAddr(c.PoolFirst)
		last, err2 := netip.ParseAddr(c.PoolLast)
		prefix, err3 := netip.ParsePrefix(c.Prefix)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("netboot: dhcp mode needs pool_first, pool_last and prefix: %v %v %v", err1, err2, err3)
		}
		cfg.Pool = netboot.Pool{First: first, Last: last, Prefix: prefix, LeaseTime: time.Hour}
	}
	return netboot.New(cfg, policy{m: m, cfg: c})
}

package netcfg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// NoLeaseError says that DHCP on a link got no lease in time.
type NoLeaseError struct {
	Link   string
	Waited time.Duration
	Stage  string // "offer" (no DHCPOFFER) or "ack" (offers, but no DHCPACK)
	Err    error  // the last error of the exchange
}

func (e *NoLeaseError) Error() string {
	return fmt.Sprintf("dhcp on %s: no %s after %v (is a DHCP server on this link, and does it admit this MAC?): %v",
		e.Link, e.Stage, e.Waited.Round(time.Millisecond), e.Err)
}

func (e *NoLeaseError) Unwrap() error { return e.Err }

// dhcpLease runs DISCOVER/OFFER/REQUEST/ACK on link through a raw socket
// (the link has no address yet), retransmitting with doubling waits from
// cfg.DHCPFirstTry and restarting after a NAK, until cfg.DHCPWait runs
// out. It must run on the thread (and so in the network namespace) that
// owns link, like the rest of Up.
func dhcpLease(ctx context.Context, link string, cfg *Config, log *slog.Logger) (*dhcpv4.DHCPv4, error) {
	wait := orDefault(cfg.DHCPWait, DefaultDHCPWait)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c, err := nclient4.New(link, nclient4.WithTimeout(orDefault(cfg.DHCPFirstTry, DefaultDHCPFirstTry)), nclient4.WithRetry(-1))
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", link, err)
	}
	defer c.Close()
	mods := []dhcpv4.Modifier{dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
		dhcpv4.OptionDomainNameServer, dhcpv4.OptionHostName, dhcpv4.OptionIPAddressLeaseTime)}
	if cfg.Hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(cfg.Hostname)))
	}
	stage := "offer"
	for {
		offer, err := c.DiscoverOffer(ctx, mods...)
		if err == nil {
			stage = "ack"
			var l *nclient4.Lease
			if l, err = c.RequestFromOffer(ctx, offer, mods...); err == nil {
				return l.ACK, nil
			}
			var nak *nclient4.ErrNak
			if errors.As(err, &nak) {
				log.Warn("netcfg: dhcp NAK, starting over", "link", link, "server", offer.ServerIdentifier(), "offered", offer.YourIPAddr)
				continue
			}
		}
		if ctx.Err() == nil && !errors.Is(err, nclient4.ErrNoResponse) {
			return nil, fmt.Errorf("dhcp on %s: %w", link, err)
		}
		if pe := context.Cause(ctx); pe != nil && !errors.Is(pe, context.DeadlineExceeded) {
			return nil, fmt.Errorf("dhcp on %s: %w", link, pe)
		}
		return nil, &NoLeaseError{Link: link, Waited: time.Since(start), Stage: stage, Err: err}
	}
}

package keeper

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"ferry/ipsec/ike"
)

// A pool that holds the gateway or this server would have its guard cut
// the tunnel's own path: OpenTunnel refuses it, naming both, before it
// sets anything up.
func TestOpenTunnelRefusesAPoolThatWouldCutTheTunnel(t *testing.T) {
	for pool, want := range map[string]string{
		"10.60.0.0/16": "holds the gateway (10.60.0.2)",
		"10.61.0.0/24": "holds this server's address (10.61.0.1)",
	} {
		st := &ike.InitiatorState{Gateway: netip.MustParseAddr("10.60.0.2"), Local: netip.MustParseAddr("10.61.0.1"),
			TunnelPool: netip.MustParsePrefix(pool)}
		tun, err := OpenTunnel(context.Background(), st, DataPlaneUser, slog.New(slog.DiscardHandler))
		if err == nil {
			tun.Close(context.Background())
		}
		if err == nil || !strings.Contains(err.Error(), pool) || !strings.Contains(err.Error(), want) {
			t.Errorf("tunnel pool %s: %v, want a refusal naming the pool and %q", pool, err, want)
		}
	}
}

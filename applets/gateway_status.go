package applets

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"ferry/internal/promreg"
	"ferry/ipsec/ike"
	"ferry/ipsec/ike/ikemetrics"
)

// defaultGatewaySocket is the status socket of ferry-gateway.service's
// configuration template (/etc/ferry/gateway.json "status").
const defaultGatewaySocket = "/run/ferry/gateway.sock"

const gatewayStatusUsage = `gateway status [--status SOCKET] [-o text|json]

Every IKE SA of the running gateway, in the manner of swanctl --list-sas:
the peer (its certificate's subject and key pin), its lease, its virtual
IP and outer address, the suite, the age and the next rekey, and for each
CHILD_SA the bytes and packets in and out and its own rekey. -o json
prints the gateway's answer as it is.`

func gatewayStatus(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "gateway status", gatewayStatusUsage)
	sock := fs.String("status", defaultGatewaySocket, "status socket of the running gateway (its config's \"status\")")
	format := fs.String("o", "text", "output: text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usagef("-o %q: want text or json", *format)
	}
	out, err := ike.Control(ctx, *sock, "status")
	if err != nil {
		return fmt.Errorf("%w (is ferry gateway running with \"status\": %q?)", err, *sock)
	}
	if *format == "json" {
		_, err = env.Stdout.Write(out)
		return err
	}
	var sas []ike.SAStatus
	if err := json.Unmarshal(out, &sas); err != nil {
		return fmt.Errorf("gateway status from %s: %w", *sock, err)
	}
	writeSAs(env.Stdout, sas, time.Now())
	return nil
}

// writeSAs prints sas as swanctl --list-sas does: a head line per IKE
// SA, its details indented, then each CHILD_SA.
func writeSAs(w io.Writer, sas []ike.SAStatus, now time.Time) {
	if len(sas) == 0 {
		fmt.Fprintln(w, "no IKE SAs")
		return
	}
	for i, s := range sas {
		peer := s.Peer
		if peer == "" {
			peer = "(unauthenticated)"
		}
		fmt.Fprintf(w, "%s: #%d, %s, IKEv2, %s_i %s_r\n", peer, i+1, strings.ToUpper(s.State), s.SPIi, s.SPIr)
		remote := s.Remote
		if s.Encap {
			remote += " (UDP-encapsulated)"
		}
		fmt.Fprintf(w, "  remote %s", remote)
		if s.VirtualIP != "" {
			fmt.Fprintf(w, " [%s]", s.VirtualIP)
		}
		fmt.Fprintln(w)
		if s.Pin != "" {
			fmt.Fprintf(w, "  key pin %s\n", s.Pin)
		}
		if s.Lease != "" {
			fmt.Fprintf(w, "  lease %s\n", s.Lease)
		}
		if s.Suite != "" {
			fmt.Fprintf(w, "  %s\n", s.Suite)
		}
		fmt.Fprintf(w, "  established %s ago%s, data path %s\n", time.Duration(s.AgeSeconds)*time.Second, rekeyIn(s.NextRekey, now), s.DataPath)
		if s.Reconnects > 0 {
			fmt.Fprintf(w, "  reconnects %d (last: %s)\n", s.Reconnects, s.LastReconnectReason)
		}
		for j, c := range s.Children {
			state := "INSTALLED"
			if c.Replaced {
				state = "REKEYED"
			}
			fmt.Fprintf(w, "  child #%d, %s, TUNNEL, ESP SPIs %s_i %s_o\n", j+1, state, c.InSPI, c.OutSPI)
			fmt.Fprintf(w, "    installed %s ago%s\n", time.Duration(c.AgeSeconds)*time.Second, rekeyIn(c.RekeyAt, now))
			fmt.Fprintf(w, "    in  %s, %d bytes, %d packets\n", c.InSPI, c.InBytes, c.InPackets)
			fmt.Fprintf(w, "    out %s, %d bytes, %d packets\n", c.OutSPI, c.OutBytes, c.OutPackets)
			fmt.Fprintf(w, "    local  %s\n    remote %s\n", prefixes(c.TSLocal), prefixes(c.TSRemote))
		}
	}
}

func rekeyIn(at string, now time.Time) string {
	t, err := time.Parse(time.RFC3339, at)
	if at == "" || err != nil {
		return ""
	}
	return fmt.Sprintf(", rekeying in %s", t.Sub(now).Round(time.Second))
}

func prefixes[T fmt.Stringer](ps []T) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

// defaultGatewayStatusListen serves the gateway's /metrics when
// status_listen is not set: loopback only.
const defaultGatewayStatusListen = "127.0.0.1:9733"

// gatewayStatusServer serves GET /metrics of d's SAs and counters.
func gatewayStatusServer(d *ike.Daemon) *http.Server {
	reg := promreg.New("gateway")
	reg.MustRegister(ikemetrics.New(d))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promreg.Handler(reg))
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
}

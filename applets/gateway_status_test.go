package applets

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/ipsec/ike"
)

// `ferry gateway status` asks the gateway's status socket and prints each
// SA as swanctl --list-sas does: peer, lease, addresses, suite, age, next
// rekey, and both directions' bytes and packets per CHILD_SA.
func TestGatewayStatusListsSAsLikeSwanctl(t *testing.T) {
	now := time.Now()
	sa := ike.SAStatus{Role: "responder", State: "established", SPIi: "0123456789abcdef", SPIr: "fedcba9876543210",
		Remote: "198.51.100.9:4500", Encap: true, Peer: "CN=lent-52:54:00:12:34:56", Pin: strings.Repeat("ab", 32),
		Lease: "L7f3a", VirtualIP: "10.8.1.5", Suite: "AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256", AgeSeconds: 754,
		NextRekey: now.Add(3*time.Hour + 30*time.Second).UTC().Format(time.RFC3339), DataPath: "alive",
		Children: []ike.ChildStatus{{InSPI: "c1a2b3c4", OutSPI: "d5e6f708", AgeSeconds: 300,
			TSLocal: []netip.Prefix{netip.MustParsePrefix("10.8.0.0/24")}, TSRemote: []netip.Prefix{netip.MustParsePrefix("10.8.1.5/32")},
			RekeyAt: now.Add(50*time.Minute + 30*time.Second).UTC().Format(time.RFC3339), InBytes: 1234567, InPackets: 1500, OutBytes: 7654321, OutPackets: 5200}}}
	sock := filepath.Join(t.TempDir(), "gw.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			if line == "status\n" {
				json.NewEncoder(c).Encode([]ike.SAStatus{sa})
			}
			c.Close()
		}
	}()
	env, out, _ := bufEnv()
	if code := Main(context.Background(), env, []string{"ferry", "gateway", "status", "--status", sock}); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	got := out.String()
	for _, want := range []string{
		"CN=lent-52:54:00:12:34:56: #1, ESTABLISHED, IKEv2, 0123456789abcdef_i fedcba9876543210_r",
		"remote 198.51.100.9:4500 (UDP-encapsulated) [10.8.1.5]",
		"lease L7f3a", "AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256",
		"established 12m34s ago, rekeying in 3h0m", "data path alive",
		"child #1, INSTALLED, TUNNEL, ESP SPIs c1a2b3c4_i d5e6f708_o",
		"in  c1a2b3c4, 1234567 bytes, 1500 packets", "out d5e6f708, 7654321 bytes, 5200 packets",
		"local  10.8.0.0/24", "remote 10.8.1.5/32", "rekeying in 50m",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", got)
	}
	env, out, errb := bufEnv()
	if code := Main(context.Background(), env, []string{"ferry", "gateway", "status", "--status", sock, "-o", "json"}); code != 0 {
		t.Fatalf("-o json: exit %d: %s", code, errb)
	}
	var back []ike.SAStatus
	if err := json.Unmarshal([]byte(out.String()), &back); err != nil || len(back) != 1 || back[0].Children[0].OutBytes != 7654321 {
		t.Fatalf("-o json: %v %+v", err, back)
	}
	env, _, errb = bufEnv()
	if code := Main(context.Background(), env, []string{"ferry", "gateway", "status", "--status", filepath.Join(t.TempDir(), "none")}); code != 1 || !strings.Contains(errb.String(), "is ferry gateway running") {
		t.Fatalf("no gateway: exit %d %q", code, errb)
	}
}

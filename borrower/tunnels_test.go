package borrower

import (
	"encoding/json"
	"strings"
	"testing"

	"ferry/ipsec/ike"
)

func FuzzParseFerryStatus(f *testing.F) {
	good, _ := json.Marshal([]ike.SAStatus{{Role: "responder", State: "established", Pin: strings.Repeat("a", 64), VirtualIP: "10.44.8.1"}})
	f.Add(good)
	f.Add([]byte(`[{"role":"responder","state":"established","pin":"x","virtual_ip":"10.44.8.999"}]`))
	f.Add([]byte(`error: unknown command`))
	f.Fuzz(func(t *testing.T, data []byte) {
		peers, err := parseFerryStatus(data)
		if err != nil {
			return
		}
		for _, p := range peers {
			if !p.VIP.IsValid() || p.Pin == "" {
				t.Fatalf("peer without address or pin from %q: %+v", data, p)
			}
		}
	})
}

func TestStatusRefusesBadVirtualIPAndSkipsUnestablished(t *testing.T) {
	_, err := parseFerryStatus([]byte(`[{"role":"responder","state":"established","pin":"p","virtual_ip":"10.44.8.999"}]`))
	if err == nil || !strings.Contains(err.Error(), `virtual_ip "10.44.8.999"`) {
		t.Fatalf("bad virtual IP: %v, want an error naming it", err)
	}
	peers, err := parseFerryStatus([]byte(`[{"role":"responder","state":"half-open","pin":"p","virtual_ip":"10.44.8.1"},
		{"role":"initiator","opened":true,"state":"established","pin":"p","virtual_ip":"10.44.8.2"}]`))
	if err != nil || len(peers) != 0 {
		t.Fatalf("half-open SAs and SAs the gateway opened gave peers %v (%v), want none", peers, err)
	}
	// After the gateway rekeyed a server's IKE SA, it is that SA's
	// initiator: the server's tunnel all the same.
	peers, err = parseFerryStatus([]byte(`[{"role":"initiator","state":"established","pin":"p","virtual_ip":"10.44.8.2"}]`))
	if err != nil || len(peers) != 1 {
		t.Fatalf("an SA the gateway rekeyed gave peers %v (%v), want the server", peers, err)
	}
}

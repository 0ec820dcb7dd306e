package ikemetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"ferry/internal/promreg"
	"ferry/ipsec/ike"
)

type fixed struct {
	sas []ike.SAStatus
	n   ike.Counts
}

func (f fixed) Status() []ike.SAStatus { return f.sas }
func (f fixed) Counts() ike.Counts     { return f.n }

// The gateway's series: SAs by state, ESP bytes and packets summed over
// the installed CHILD_SAs, rekeys and refusals, all linted.
func TestGatewaySeries(t *testing.T) {
	src := fixed{sas: []ike.SAStatus{
		{State: "established", Children: []ike.ChildStatus{{InBytes: 100, OutBytes: 200, InPackets: 1, OutPackets: 2}, {InBytes: 5, OutBytes: 7, InPackets: 1, OutPackets: 1}}},
		{State: "established"}, {State: "connecting"}},
		n: ike.Counts{IKERekeys: 2, ChildRekeys: 9, RefusedPeers: 3}}
	reg := promreg.New("gateway")
	reg.MustRegister(New(src))
	want := `
# HELP ferry_gateway_esp_bytes ESP payload bytes of the CHILD_SAs now installed, by direction.
# TYPE ferry_gateway_esp_bytes gauge
ferry_gateway_esp_bytes{direction="in"} 105
ferry_gateway_esp_bytes{direction="out"} 207
# HELP ferry_gateway_ike_sas IKE SAs by state.
# TYPE ferry_gateway_ike_sas gauge
ferry_gateway_ike_sas{state="connecting"} 1
ferry_gateway_ike_sas{state="established"} 2
# HELP ferry_gateway_refusals_total Requests refused since the gateway started: peer (authentication, allow list, CRL), child (CHILD_SA or CREATE_CHILD_SA), message (another IKE version).
# TYPE ferry_gateway_refusals_total counter
ferry_gateway_refusals_total{what="child"} 0
ferry_gateway_refusals_total{what="message"} 0
ferry_gateway_refusals_total{what="peer"} 3
# HELP ferry_gateway_rekeys_total Rekeys completed since the gateway started, IKE SA or CHILD_SA.
# TYPE ferry_gateway_rekeys_total counter
ferry_gateway_rekeys_total{sa="child"} 9
ferry_gateway_rekeys_total{sa="ike"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ferry_gateway_esp_bytes", "ferry_gateway_ike_sas",
		"ferry_gateway_refusals_total", "ferry_gateway_rekeys_total"); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

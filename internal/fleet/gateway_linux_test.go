package fleet

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"ferry/applets"
	"ferry/lender/lendertest"
	"ferry/pki"
)

// responder is the gateway process the servers' tunnels go to.
type responder struct {
	name  string
	pid   int
	allow string // ferry gateway's allow list file
	// status and metrics: ferry gateway's status socket and the URL of
	// its /metrics (its status listener on the veth, reachable from the
	// fleet's namespace).
	status, metrics string
}

// startGateway runs `ferry gateway` as a process of its own in namespace ns.
func startGateway(t *testing.T, dir, ns string, la *lendertest.Agent, cert *x509.Certificate, key crypto.Signer) *responder {
	t.Helper()
	keyPEM, err := pki.MarshalKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"lender-ca.pem": pki.CertPEM(la.CA.Cert), "gw.pem": pki.CertPEM(cert), "gw.key": keyPEM, "allow.jsonl": nil}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	cfg, _ := json.Marshal(map[string]any{"listen": gatewayAddr.String(), "ca": p("lender-ca.pem"), "cert": p("gw.pem"), "key": p("gw.key"),
		"pool": "10.90.0.0/20", "subnets": []string{"10.89.0.0/24"}, "inner": "10.89.0.1/32", "allow": p("allow.jsonl"),
		"status": p("gw.sock"), "status_listen": "10.88.0.2:9733", "tun": "fleetgw0", "dpd_seconds": 10})
	if err := os.WriteFile(p("gateway.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, os.Args[0], "-test.run=^TestFleetGatewayProcess$", "-test.timeout=60m"}, profileFlag("gateway")...)...)
	cmd.Env = append(os.Environ(), envGateway+"="+p("gateway.json"), envChild+"=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopProcess(cmd) })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(p("gw.sock")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not come up in 30 s (no status socket)")
		}
	}
	return &responder{name: "ferry gateway", pid: cmd.Process.Pid, allow: p("allow.jsonl"), status: p("gw.sock"), metrics: "http://10.88.0.2:9733/metrics"}
}

// rss is the responder's resident memory in bytes.
func (g *responder) rss(t *testing.T) int64 { return procRSS(t, g.pid) }

// procRSS is process pid's resident memory in bytes.
func procRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// cpu is the responder's user + system time so far.
func (g *responder) cpu(t *testing.T) time.Duration {
	return procCPU(t, g.pid)
}

func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64) // fields 14 and 15 of stat(5)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

type runtimeMem struct {
	heap       uint64
	goroutines int
}

func (m *runtimeMem) read() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.heap, m.goroutines = ms.HeapInuse, runtime.NumGoroutine()
}

// checkGatewayStatus reads the running gateway as an operator would:
// `ferry gateway status` lists every SA as swanctl --list-sas does, and
// its /metrics counts them, linted.
func checkGatewayStatus(t *testing.T, gw *responder, n int) {
	t.Helper()
	var out strings.Builder
	env := &applets.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Log: slog.New(slog.DiscardHandler)}
	if code := applets.Main(context.Background(), env, []string{"ferry", "gateway", "status", "--status", gw.status}); code != 0 {
		t.Fatalf("ferry gateway status: exit %d\n%s", code, out.String())
	}
	text := out.String()
	if got := len(saLine.FindAllString(text, -1)); got != n {
		t.Errorf("ferry gateway status lists %d established SAs, want %d:\n%.2000s", got, n, text)
	}
	for _, want := range []string{"lease L", "aes256gcm16", "rekeying in", "child #1, INSTALLED", "in  ", "out "} {
		if !strings.Contains(text, want) {
			t.Errorf("ferry gateway status lacks %q:\n%.2000s", want, text)
		}
	}
	resp, err := http.Get(gw.metrics)
	if err != nil {
		t.Fatalf("gateway /metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`ferry_gateway_ike_sas{state="established"} %d`, n); !strings.Contains(string(body), want) {
		t.Errorf("gateway /metrics lacks %q:\n%s", want, body)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("gateway /metrics lint: %s: %s", p.Metric, p.Text)
	}
	fmt.Printf("ferry gateway status: %d SAs listed; /metrics: %d bytes, linted\n", n, len(body))
}

var saLine = regexp.MustCompile(`(?m)^\S.*: #\d+, ESTABLISHED, IKEv2, `)

// espOutBytes is the ESP payload the gateway sealed towards the servers
// so far, from its /metrics: what crossed the tunnels downstream.
func (g *responder) espOutBytes(t *testing.T) float64 {
	t.Helper()
	resp, err := http.Get(g.metrics)
	if err != nil {
		t.Fatalf("gateway /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	const name = `ferry_gateway_esp_bytes{direction="out"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("gateway /metrics: %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("gateway /metrics lacks %s", name)
	return 0
}

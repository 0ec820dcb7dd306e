package fleet

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/lender/lendertest"
	"ferry/pki"
)

// responder is the gateway process the servers' tunnels go to.
type responder struct {
	name  string
	pid   int
	allow string // ferry gateway's allow list file
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
		"status": p("gw.sock"), "tun": "fleetgw0", "dpd_seconds": 10})
	if err := os.WriteFile(p("gateway.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestFleetGatewayProcess$", "-test.timeout=60m")
	cmd.Env = append(os.Environ(), envGateway+"="+p("gateway.json"), envChild+"=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(p("gw.sock")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not come up in 30 s (no status socket)")
		}
	}
	return &responder{name: "ferry gateway", pid: cmd.Process.Pid, allow: p("allow.jsonl")}
}

// rss is the responder's resident memory in bytes.
func (g *responder) rss(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(g.pid) + "/status")
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

package borrower_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"ferry/ipsec/ike"
)

// gatewayStatus answers "status" on a unix socket as ferry gateway's
// status socket does (ike.ServeControl), with the SAs a test sets.
type gatewayStatus struct {
	path string
	mu   sync.Mutex
	sas  []ike.SAStatus
}

func startGatewayStatus(t *testing.T, dir string) *gatewayStatus {
	g := &gatewayStatus{path: filepath.Join(dir, "gateway.sock"), sas: []ike.SAStatus{}}
	serveUnix(t, g.path, g.serve)
	return g
}

func (g *gatewayStatus) serve(c net.Conn) {
	defer c.Close()
	if line, _ := bufio.NewReader(c).ReadString('\n'); line != "status\n" {
		io.WriteString(c, "error: unknown command (status, down)\n")
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	json.NewEncoder(c).Encode(g.sas)
}

func (g *gatewayStatus) set(sas ...ike.SAStatus) {
	g.mu.Lock()
	g.sas = sas
	g.mu.Unlock()
	time.Sleep(300 * time.Millisecond) // past the borrower's minimum cache age
}

// statusListen is the borrower's status listener (/metrics).
func (l *lab) statusListen() string {
	var cfg struct {
		StatusListen string `json:"status_listen"`
	}
	data, _ := os.ReadFile(l.bcfg)
	json.Unmarshal(data, &cfg)
	return cfg.StatusListen
}

func (l *lab) imageListen() string {
	var cfg struct {
		ImageListen string `json:"image_listen"`
	}
	data, _ := os.ReadFile(l.bcfg)
	json.Unmarshal(data, &cfg)
	return cfg.ImageListen
}

// imageGet fetches path from the image server with source address from.
func (l *lab) imageGet(t *testing.T, from, path string) (int, string) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Get("https://" + l.imageListen() + path)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, from, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body)
}

package borrower_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ferry/initrd"
	"ferry/internal/testbin"
	"ferry/kexec/kexectest"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// buildFerry returns the binary TestMain built.
func buildFerry(t *testing.T) string {
	t.Helper()
	return testbin.Path()
}

// orgCA is one organisation's CA for the managers' mutual TLS.
type orgCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newOrgCA(t *testing.T, dir, name string) *orgCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	ca := &orgCA{cert: c, key: key, file: filepath.Join(dir, name+"-ca.pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue writes NAME.pem and NAME.key for a server (IP SAN) or client.
func (ca *orgCA) issue(t *testing.T, dir, name string, server bool) (string, string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	cf, kf := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	writePEM(t, cf, "CERTIFICATE", der)
	writePEM(t, kf, "PRIVATE KEY", kder)
	return cf, kf
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	data, _ := json.MarshalIndent(v, "", " ")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// imageB writes a bzImage header-only kernel and a newc initrd that
// catalog's checks accept.
func imageB(t *testing.T, dir string) (string, string) {
	b := kexectest.BzImage(0x020f, "6.1.0-56-amd64 (test) #1 SMP")
	k := filepath.Join(dir, "vmlinuz-b")
	if err := os.WriteFile(k, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := initrd.WriteArchive(&buf, []initrd.File{{Path: "init", Mode: 0o755, Data: []byte("#!/bin/sh\n")}}); err != nil {
		t.Fatal(err)
	}
	i := filepath.Join(dir, "initrd-b.img")
	if err := os.WriteFile(i, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return k, i
}

// fakeQMP is a QEMU monitor socket that records the commands it gets.
type fakeQMP struct {
	path string
	mu   sync.Mutex
	cmds []string
}

func startQMP(t *testing.T, dir string) *fakeQMP {
	q := &fakeQMP{path: filepath.Join(dir, "qmp.sock")}
	serveUnix(t, q.path, q.serve)
	return q
}

// serveUnix answers every connection to a fresh unix socket at path with
// serve, until the test ends: the stand-ins for QEMU's and the gateway's
// control sockets.
func serveUnix(t *testing.T, path string, serve func(net.Conn)) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
}

func (q *fakeQMP) serve(c net.Conn) {
	defer c.Close()
	fmt.Fprintln(c, `{"QMP":{"version":{},"capabilities":[]}}`)
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		var m struct{ Execute string }
		json.Unmarshal(sc.Bytes(), &m)
		q.mu.Lock()
		q.cmds = append(q.cmds, m.Execute)
		q.mu.Unlock()
		if m.Execute == "query-status" {
			fmt.Fprintln(c, `{"return":{"status":"paused","running":false}}`)
		} else {
			fmt.Fprintln(c, `{"return":{}}`)
		}
	}
}

func (q *fakeQMP) count(cmd string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, c := range q.cmds {
		if c == cmd {
			n++
		}
	}
	return n
}

// proc is a running manager.
type proc struct {
	cmd  *exec.Cmd
	log  *bytes.Buffer
	args []string
}

func (l *lab) start(t *testing.T, args ...string) *proc {
	p := &proc{log: &bytes.Buffer{}, args: args}
	p.cmd = exec.Command(l.bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.kill()
		// After Wait the output is complete and safe to read: a manager
		// that failed to start says why, not only "connection refused".
		if t.Failed() {
			t.Logf("%s %s output:\n%s", l.bin, strings.Join(args, " "), p.log.String())
		}
	})
	return p
}

// kill is kill -9 and wait.
func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

// waitFor retries f until it succeeds or 15 s pass.
func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ferry runs one CLI command and returns its stdout.
func (l *lab) ferry(args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(context.Background(), l.bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ferry %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func sha256sum(b []byte) [32]byte { return sha256.Sum256(b) }

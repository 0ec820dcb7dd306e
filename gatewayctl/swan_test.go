package gatewayctl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const charonPath = "/usr/lib/ipsec/charon"

// testConn makes a conn with a fresh CA and server key.
func testConn(t testing.TB, lease, server string) Conn {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferry test lender CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	must(t, err)
	ca, err := x509.ParseCertificate(der)
	must(t, err)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return Conn{
		Lease: lease, Server: server, CACert: ca, PubKey: &srvKey.PublicKey,
		RemoteID: "CN=" + server + ", O=ferry lease " + lease, LocalAddrs: []string{"10.43.0.1"},
		Pool: "ferry-" + lease, LocalTS: []string{"10.43.8.0/24"},
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// startCharon runs charon in a network namespace of its own, with a
// private /run, its VICI socket in a temporary directory, and returns the
// socket path. It skips when charon or root is missing.
func startCharon(t *testing.T) (dir, socket string) {
	t.Helper()
	if _, err := os.Stat(charonPath); err != nil {
		t.Skipf("strongSwan charon not installed (%s): apt-get install strongswan-charon strongswan-swanctl libcharon-extra-plugins", charonPath)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	dir = t.TempDir()
	socket = filepath.Join(dir, "charon.vici")
	conf := fmt.Sprintf(`charon {
    load_modular = no
    load = random nonce kdf hmac sha2 aes gcm openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints kernel-netlink socket-default vici
    install_routes = no
    plugins {
        vici {
            socket = unix://%s
        }
    }
    filelog {
        log {
            path = %s/charon.log
            default = 1
            flush_line = yes
        }
    }
}
`, socket, dir)
	must(t, os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(conf), 0o644))
	ns := fmt.Sprintf("gatewayctl%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").Run()
	cmd := exec.Command("ip", "netns", "exec", ns, "unshare", "-m", "sh", "-c",
		"mount --make-rprivate / && mount -t tmpfs none /run && exec "+charonPath)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(dir, "strongswan.conf"))
	cmd.Stdout, cmd.Stderr = nil, nil
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(socket); err == nil {
			return dir, socket
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "charon.log"))
	t.Fatalf("charon made no VICI socket at %s; log:\n%s", socket, log)
	return "", ""
}

func TestSwanLoadListUnloadAgainstCharon(t *testing.T) {
	_, socket := startCharon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := DialSwan(ctx, socket, nil)
	must(t, err)
	defer s.Close()
	c := testConn(t, "l1", "srv-a")
	c.VIP = netip.MustParseAddr("10.43.9.7")
	must(t, s.Load(ctx, c))
	must(t, s.Load(ctx, testConn(t, "l1", "srv-b")))
	pools, err := exec.Command("swanctl", "--list-pools", "--uri", "unix://"+socket).CombinedOutput()
	if err != nil || !strings.Contains(string(pools), "ferry-l1-srv-a") || !strings.Contains(string(pools), "10.43.9.7") {
		t.Errorf("the conn with a virtual IP has no pool of that address alone: %v\n%s", err, pools)
	}
	// charon's list-conns does not show pools: check what we load.
	if m, err := c.tree("", "").message(); err != nil || !slices.Equal(m.Get("pools").([]string), []string{"ferry-l1-srv-a"}) {
		t.Errorf("the conn does not draw from its own pool: %v %v", m, err)
	}
	names, err := s.Conns(ctx)
	must(t, err)
	if !slices.Contains(names, "ferry-l1-srv-a") || !slices.Contains(names, "ferry-l1-srv-b") {
		t.Fatalf("charon lists %v, want both servers' conns", names)
	}
	must(t, s.Unload(ctx, "l1", "srv-a"))
	names, err = s.Conns(ctx)
	must(t, err)
	if slices.Contains(names, "ferry-l1-srv-a") || !slices.Contains(names, "ferry-l1-srv-b") {
		t.Fatalf("after unloading srv-a charon lists %v", names)
	}
	if err := s.Unload(ctx, "l1", "srv-a"); err != nil {
		t.Errorf("second unload: %v", err)
	}
	pools, err = exec.Command("swanctl", "--list-pools", "--uri", "unix://"+socket).CombinedOutput()
	if err != nil || strings.Contains(string(pools), "ferry-l1-srv-a") {
		t.Errorf("the pool of an unloaded conn is still there: %v\n%s", err, pools)
	}
}

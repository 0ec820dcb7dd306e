package ike

import (
	"context"
	"strings"
	"testing"
	"time"

	"ferry/pki"
	"ferry/scripts/strongswan"
)

// swanConf is swanctl.conf, one setting a line as swanctl wants.
func swanConf(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

func startCharon(t *testing.T, ns, conf string, files map[string][]byte, key []byte, l *lab) *strongswan.Charon {
	t.Helper()
	if err := strongswan.Available(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := strongswan.Start(ctx, strongswan.Options{NetNS: ns, Dir: t.TempDir(), Swanctl: conf,
		CACerts: map[string][]byte{"ca.pem": l.creds.ca.CertPEM()}, Certs: files, Keys: map[string][]byte{"key.pem": key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("charon log:\n%s", c.Log())
		}
		c.Stop()
	})
	return c
}

func keyPEM(t *testing.T, l *lab, cn string) ([]byte, []byte, string) {
	k, c, pin := l.creds.issue(t, cn, time.Hour)
	kp, err := pki.MarshalKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	return kp, pki.CertPEM(c), pin
}

func TestFerryInitiatorWithStrongSwanResponder(t *testing.T) {
	l := newLab(t)
	kp, cp, _ := keyPEM(t, l, "swan-gateway")
	inNS(t, l.p.b, func() { addLoAddr(t, gwInner) })
	startCharon(t, l.p.nameB, swanConf(
		"connections {", "ferry {", "version = 2", "local_addrs = "+gwOuter.String(),
		"proposals = aes256gcm16-prfsha256-ecp256", "encap = yes", "pools = vips",
		"local {", "auth = pubkey", "certs = gw.pem", "}", "remote {", "auth = pubkey", "}",
		"children {", "net {", "local_ts = "+gwSubnet.String(), "esp_proposals = aes256gcm16-ecp256", "}", "}", "}", "}",
		"pools {", "vips {", "addrs = "+vipPool.String(), "}", "}"),
		map[string][]byte{"gw.pem": cp}, kp, l)
	ini, err := l.connect(t, l.initCfg)
	if err != nil {
		t.Fatalf("ferry -> strongSwan: %v", err)
	}
	st := ini.d.Status()
	if len(st) != 1 || !strings.HasPrefix(st[0].VirtualIP, "10.33.200.") || st[0].Peer != "CN=swan-gateway" || !st[0].Encap {
		t.Fatalf("status %+v", st)
	}
	transfer(t, l, 1<<20, nil)
}

func TestStrongSwanInitiatorWithFerryGateway(t *testing.T) {
	l := newLab(t)
	kp, cp, pin := keyPEM(t, l, "swan-lease")
	l.allow.Add(authzEntry(pin))
	l.startGateway(t)
	c := startCharon(t, l.p.nameA, swanConf(
		"connections {", "ferry {", "version = 2", "local_addrs = "+initOuter.String(), "remote_addrs = "+gwOuter.String(),
		"proposals = aes256gcm16-prfsha256-ecp256", "encap = yes", "vips = 0.0.0.0",
		"local {", "auth = pubkey", "certs = lease.pem", "}", "remote {", "auth = pubkey", "id = CN=gateway", "}",
		"children {", "net {", "remote_ts = "+gwSubnet.String(), "esp_proposals = aes256gcm16-ecp256", "}", "}", "}", "}"),
		map[string][]byte{"lease.pem": cp}, kp, l)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := c.Swanctl(ctx, "--initiate", "--child", "net", "--timeout", "15"); err != nil {
		t.Fatalf("strongSwan -> ferry: %v\n%s", err, out)
	}
	gst := l.gw.d.Status()
	if len(gst) != 1 || gst[0].Peer != "CN=swan-lease" || !strings.HasPrefix(gst[0].VirtualIP, "10.33.200.") {
		t.Fatalf("gateway status %+v", gst)
	}
	transfer(t, l, 1<<20, nil)
}

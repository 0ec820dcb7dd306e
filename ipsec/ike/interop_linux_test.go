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
	l.p.b.Do(t, func() { addLoAddr(t, gwInner) })
	startCharon(t, l.p.b.Name, swanConf(
		"connections {", "ferry {", "version = 2", "local_addrs = "+gwOuter.String(),
		"proposals = aes256gcm16-prfsha256-ecp256", "encap = yes", "pools = vips",
		"local {", "auth = pubkey", "certs = gw.pem", "}", "remote {", "auth = pubkey", "}",
		"children {", "net {", "local_ts = "+gwSubnet.String(), "esp_proposals = aes256gcm16-ecp256", "}", "}", "}", "}",
		"pools {", "vips {", "addrs = "+vipPool.String(), "}", "}"),
		map[string][]byte{"gw.pem": cp}, kp, l)
	l.initCfg.FragmentSize = 500 // IKE_AUTH in fragments both ways (charon's fragment_size is 500 too)
	ini, err := l.connect(t, l.initCfg)
	if err != nil {
		t.Fatalf("ferry -> strongSwan: %v", err)
	}
	st := ini.d.Status()
	if len(st) != 1 || !strings.HasPrefix(st[0].VirtualIP, "10.33.200.") || st[0].Peer != "CN=swan-gateway" || !st[0].Encap {
		t.Fatalf("status %+v", st)
	}
	transfer(t, l, 1<<20, nil)
	// Rekeys initiated by ferry: CHILD_SA (with PFS) during a transfer,
	// then the IKE SA, then traffic again on what the new SAs carry.
	transfer(t, l, 4<<20, func() {
		if n := ini.d.RekeyChildren(); n != 1 {
			t.Errorf("CHILD_SA rekey not started")
		}
	})
	if n := ini.d.RekeyIKE(); n != 1 {
		t.Fatalf("IKE rekey not started")
	}
	waitUp(t, ini, st[0].SPIi)
	transfer(t, l, 1<<20, func() { ini.d.RekeyChildren() })
}

func TestStrongSwanInitiatorWithFerryGateway(t *testing.T) {
	l := newLab(t)
	kp, cp, pin := keyPEM(t, l, "swan-lease")
	l.allow.Add(authzEntry(pin))
	l.gwCfg.FragmentSize = 500
	l.startGateway(t)
	c := startCharon(t, l.p.a.Name, swanConf(
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
	// Rekeys initiated by strongSwan: CHILD_SA during a transfer, then
	// the IKE SA.
	transfer(t, l, 4<<20, func() {
		if out, err := c.Swanctl(ctx, "--rekey", "--child", "net"); err != nil {
			t.Errorf("swanctl --rekey --child: %v\n%s", err, out)
		}
	})
	if out, err := c.Swanctl(ctx, "--rekey", "--ike", "ferry"); err != nil {
		t.Fatalf("swanctl --rekey --ike: %v\n%s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if g := l.gw.d.Status(); len(g) == 1 && g[0].SPIi != gst[0].SPIi && len(g[0].Children) == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if g := l.gw.d.Status(); len(g) != 1 || g[0].SPIi == gst[0].SPIi || len(g[0].Children) != 1 {
		t.Fatalf("gateway after strongSwan's IKE rekey: %+v", g)
	}
	transfer(t, l, 1<<20, nil)
}

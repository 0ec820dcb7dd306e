package borrower_test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/api"
	"ferry/ipsec/authz"
	"ferry/lender"
)

// TestLenderSideReturnTakesKeysOffTheGateway: the lender ends a lease
// (its operator returns it); the borrower's next refresh takes the keys
// off the gateway's allow list and returns the lease on its side, without
// asking the servers (the lender powers them off).
func TestLenderSideReturnTakesKeysOffTheGateway(t *testing.T) {
	l := newLab(t, buildFerry(t))
	id, agents := l.activeLease(t)
	var ls []api.Lease
	lc := api.UnixClient(lender.AdminSocket(l.ldir))
	if err := lc.Call(t.Context(), "GET", "/admin/leases", nil, &ls); err != nil || len(ls) != 1 {
		t.Fatalf("lender has %d leases (%v), want 1", len(ls), err)
	}
	var got api.Lease
	if err := lc.Call(t.Context(), "POST", api.PathLeases+"/"+ls[0].ID+api.PathReturn, nil, &got); err != nil {
		t.Fatalf("return at the lender: %v", err)
	}
	waitFor(t, "the keys to leave the gateway's allow list", func() error {
		data, _ := os.ReadFile(filepath.Join(l.dir, "allow.jsonl"))
		for _, a := range agents {
			if strings.Contains(string(data), a.pin()) {
				return fmt.Errorf("allow list still has %s after the lender returned the lease:\n%s", a.pin(), data)
			}
		}
		return nil
	})
	// The keys leave the gateway before the return is recorded (the
	// return's last step), so the state is waited for, not read once.
	var out string
	waitFor(t, "lease show to say returned", func() error {
		out = l.must(t, "borrower", "lease", "show", "--dir", l.bdir, id)
		if m := leaseLine.FindStringSubmatch(out); m == nil || m[2] != "returned" {
			return fmt.Errorf("lease show after the lender's return:\n%s\nwant state returned", out)
		}
		return nil
	})
	if !strings.Contains(out, "returned at the lender") {
		t.Errorf("lease show does not say the lender ended the lease:\n%s", out)
	}
	if roots, _ := filepath.Glob(filepath.Join(l.bdir, "roots", id+"-*")); len(roots) != 0 {
		t.Errorf("roots left after the lender's return: %v", roots)
	}
}

// TestReturnRelaysTheLendersCRLToTheGateway: with gateway_crl_file set,
// the borrower keeps the lender's CRL there for ferry gateway's "crl";
// after a return it lists the lease's certificates, signed by the lender
// CA as the gateway checks.
func TestReturnRelaysTheLendersCRLToTheGateway(t *testing.T) {
	var crlFile string
	l := newLabWith(t, buildFerry(t), func(cfg map[string]any) {
		crlFile = filepath.Join(filepath.Dir(cfg["dir"].(string)), "lender.crl")
		cfg["gateway_crl_file"] = crlFile
	})
	id, agents := l.activeLease(t)
	l.must(t, "borrower", "lease", "return", "--dir", l.bdir, id)
	caPEM, err := os.ReadFile(filepath.Join(l.ldir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(crlFile)
	if err != nil {
		t.Fatalf("no CRL relayed by the return: %v", err)
	}
	rl, err := authz.ParseCRL(data, ca)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, e := range rl.RevokedCertificateEntries {
		listed[e.SerialNumber.Text(16)] = true
	}
	for _, a := range agents {
		leaf, _ := x509.ParseCertificate(a.cert.Certificate[0])
		if !listed[leaf.SerialNumber.Text(16)] {
			t.Errorf("the relayed CRL lacks %s's certificate %x", a.mac, leaf.SerialNumber)
		}
	}
}

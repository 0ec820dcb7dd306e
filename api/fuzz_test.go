package api

import (
	"errors"
	"strings"
	"testing"
)

const goodLease = `{"idempotency_key":"key-00000001","count":1,"gateway":"10.41.0.1:500",
"borrower_ca_pem":"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
"image":{"kernel":{"url":"https://10.41.1.1/k","sha256":"0000000000000000000000000000000000000000000000000000000000000001"},
"initrd":{"url":"https://10.41.1.1/i","sha256":"0000000000000000000000000000000000000000000000000000000000000002"},"cmdline":"console=ttyS0"},
"roots":[{"server":"10.41.1.2","path":"/roots/a"}],"duration_seconds":3600}`

func TestDecodeLeaseRequestNamesTheBadField(t *testing.T) {
	cases := map[string]struct{ from, to, field string }{
		"count":        {`"count":1`, `"count":0`, "count"},
		"sha":          {`0000000000000000000000000000000000000000000000000000000000000002`, `xyz`, "image.initrd.sha256"},
		"url":          {`https://10.41.1.1/k`, `file:///etc/passwd`, "image.kernel.url"},
		"gateway":      {`10.41.0.1:500`, `gw.example`, "gateway"},
		"root path":    {`/roots/a`, `/roots/../etc`, "roots[0].path"},
		"unknown":      {`"count":1`, `"count":1,"evil":true`, ""},
		"roots count":  {`"count":1`, `"count":2`, "roots"},
		"type":         {`"count":1`, `"count":"1"`, "count"},
		"key charset":  {`key-00000001`, `key 0000001`, "idempotency_key"},
		"cmdline ctrl": {`console=ttyS0`, `console=ttyS0\n`, "image.cmdline"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var r LeaseRequest
			err := DecodeBytes([]byte(strings.Replace(goodLease, c.from, c.to, 1)), MaxLeaseRequest, &r)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Fatalf("error %v, want a refusal naming field %q", err, c.field)
			}
		})
	}
}

func TestDecodeRefusesOversizedBody(t *testing.T) {
	var r LeaseRequest
	err := DecodeBytes([]byte(goodLease+strings.Repeat(" ", MaxLeaseRequest)), MaxLeaseRequest, &r)
	if err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("oversized body: %v", err)
	}
}

func TestDecodeAcceptsGoodLeaseRequest(t *testing.T) {
	var r LeaseRequest
	if err := DecodeBytes([]byte(goodLease), MaxLeaseRequest, &r); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeLeaseRequest(f *testing.F) {
	f.Add([]byte(goodLease))
	f.Add([]byte(`{"count":1e400}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r LeaseRequest
		if DecodeBytes(data, MaxLeaseRequest, &r) == nil && (r.Count < 1 || len(r.Roots) != r.Count) {
			t.Fatalf("accepted count %d with %d roots", r.Count, len(r.Roots))
		}
	})
}

func FuzzDecodeEnroll(f *testing.F) {
	f.Add([]byte(`{"token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","mac":"52:54:00:00:00:01","csr_pem":"-----BEGIN CERTIFICATE REQUEST-----"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r EnrollRequest
		if DecodeBytes(data, MaxEnroll, &r) == nil {
			if _, err := NormalizeMAC(r.MAC); err != nil {
				t.Fatalf("accepted MAC %q", r.MAC)
			}
		}
	})
}

func FuzzDecodePhase(f *testing.F) {
	f.Add([]byte(`{"lease_id":"L1","server_id":"s1","phase":"fetch-b","start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:01Z","bytes":5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p PhaseReport
		if DecodeBytes(data, MaxPhase, &p) == nil && (p.End.Before(p.Start) || p.Bytes < 0) {
			t.Fatalf("accepted %+v", p)
		}
	})
}

package lender

import (
	"context"
	"testing"

	"ferry/api"
)

// TestLeasePollIsAnsweredNotModifiedWhileTheLeaseIsTheSame: a borrower
// polling GET /v1/leases/ID with the ETag of the lease it decoded and
// stored gets 304 and no body while nothing changed, the whole lease once
// something did (a server enrolled); a client that sends no If-None-Match
// gets the lease, as before.
func TestLeasePollIsAnsweredNotModifiedWhileTheLeaseIsTheSame(t *testing.T) {
	f := newFixture(t, 1)
	dir := t.TempDir()
	acme := newOrg(t, dir, "acme")
	a := newM2MLab(t, f, acme).client(acme)
	ctx := context.Background()
	var l api.Lease
	if err := a.Call(ctx, "POST", api.PathLeases, leaseReq("etag-key-0001", 1), &l); err != nil {
		t.Fatal(err)
	}
	path := api.PathLeases + "/" + l.ID
	var stored api.Lease
	if changed, err := a.GetIfChanged(ctx, path, "", &stored); err != nil || !changed {
		t.Fatalf("GET without a tag = changed %v, %v; want the lease", changed, err)
	}
	tag, err := api.ETag(stored) // what the borrower computes from its copy
	if err != nil {
		t.Fatal(err)
	}
	var got api.Lease
	if changed, err := a.GetIfChanged(ctx, path, tag, &got); err != nil || changed || got.ID != "" {
		t.Fatalf("GET with the stored lease's tag = changed %v, %v, decoded %q; want 304 and nothing decoded", changed, err, got.ID)
	}
	b, _ := f.m.BootFor(l.Servers[0].MAC)
	_, csr := csrFor(t, b.LeaseID+"/"+b.ServerID)
	if _, err := f.m.Enroll(ctx, testFrom, api.EnrollRequest{Token: b.Token, MAC: b.MAC, CSR: csr}); err != nil {
		t.Fatal(err)
	}
	if changed, err := a.GetIfChanged(ctx, path, tag, &got); err != nil || !changed || got.Servers[0].SPKIPin == "" {
		t.Fatalf("GET with the tag after an enrollment = changed %v, %v, pin %q; want the lease with the server's pin", changed, err, got.Servers[0].SPKIPin)
	}
	var plain api.Lease
	if err := a.Call(ctx, "GET", path, nil, &plain); err != nil || plain.Servers[0].SPKIPin != got.Servers[0].SPKIPin {
		t.Fatalf("plain GET = %v, pin %q; want the lease", err, plain.Servers[0].SPKIPin)
	}
}

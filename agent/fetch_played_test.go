package agent

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ferry/api"
	"ferry/pki"
)

// playedImageB serves kernel and initrd over HTTPS with a certificate of
// serverCA and returns an enrollment answer naming them, trusting
// borrowerCA, with the given kernel digest.
func playedImageB(t *testing.T, serverCA, borrowerCA *pki.CA, kernelSHA string) *api.EnrollResponse {
	t.Helper()
	key, cert, err := serverCA.Issue(pki.Identity{CommonName: "images", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.TrimPrefix(r.URL.Path, "/b1/")))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	lca, err := pki.NewCA("lender", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, own, err := lca.Issue(pki.Identity{CommonName: "L1/S1"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &api.EnrollResponse{Certificate: string(pki.CertPEM(own)), CA: string(lca.CertPEM()), LeaseID: "L1", ServerID: "S1",
		Gateway: "10.0.0.1:500", BorrowerCA: string(borrowerCA.CertPEM()),
		Image: api.Image{Kernel: api.Artifact{URL: srv.URL + "/b1/vmlinuz", SHA256: kernelSHA},
			Initrd: api.Artifact{URL: srv.URL + "/b1/initrd.img", SHA256: sum("initrd.img")}, Cmdline: "console=ttyS0"},
		Root: api.NFSRoot{Server: "10.0.0.2", Path: "/roots/r1"}}
}

func TestFetchImageBChecksDigestsAndTheBorrowerCA(t *testing.T) {
	bca, err := pki.NewCA("borrower", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	ctx := context.Background()
	n, err := FetchImageB(ctx, playedImageB(t, bca, bca, sum("vmlinuz")), dial)
	if err != nil || n != int64(len("vmlinuz")+len("initrd.img")) || dials.Load() == 0 {
		t.Fatalf("FetchImageB = %d, %v after %d dials; want both files, through the given dial", n, err, dials.Load())
	}
	if _, err := FetchImageB(ctx, playedImageB(t, bca, bca, sum("another kernel")), dial); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("kernel with another digest: err = %v, want a digest mismatch", err)
	}
	other, err := pki.NewCA("not the borrower", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FetchImageB(ctx, playedImageB(t, other, bca, sum("vmlinuz")), dial); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("image server of another CA: err = %v, want a certificate refusal", err)
	}
}

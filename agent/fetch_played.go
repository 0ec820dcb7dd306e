package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"ferry/api"
)

// FetchImageB is image A's fetch of image B for a program that plays lent
// servers (internal/fleet): the enrollment answer checked as the agent
// checks it, then kernel and initrd downloaded with the agent's own
// fetcher (its transport, size bounds, borrower-CA TLS and SHA-256 check)
// over connections dial makes (from the played server's tunnel address),
// into io.Discard instead of RAM files. It returns the bytes fetched.
func FetchImageB(ctx context.Context, r *api.EnrollResponse, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (int64, error) {
	e, err := checkEnrollment(r, r.LeaseID, r.ServerID)
	if err != nil {
		return 0, err
	}
	f := newFetcher(nil, borrowerTLS(e.borrowerCA))
	tr := f.client.Transport.(*http.Transport)
	tr.DialContext = dial
	defer tr.CloseIdleConnections()
	var total int64
	for _, p := range []struct {
		art   Artifact
		limit int64
	}{{e.settings.Kernel, maxKernel}, {e.settings.Initrd, maxInitrd}} {
		u, err := url.Parse(p.art.URL)
		if err != nil {
			return total, fmt.Errorf("image B URL %q: %w", p.art.URL, err)
		}
		body, err := f.open(ctx, u, p.limit)
		if err != nil {
			return total, err
		}
		n, err := f.copyChecked(body, u, p.art.SHA256, io.Discard, p.limit)
		body.Close()
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

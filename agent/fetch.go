package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"ferry/api"
)

// fetcher downloads image B's pieces into RAM-backed files, checking size
// bounds and digests while streaming, and prints progress on long transfers.
type fetcher struct {
	client   *http.Client
	progress io.Writer
}

// newFetcher makes a fetcher; tlsCfg verifies https servers (nil: the
// system's roots, of which an initramfs has none).
func newFetcher(progress io.Writer, tlsCfg *tls.Config) *fetcher {
	return &fetcher{
		// No overall timeout: a large initrd over a slow link is fine as
		// long as bytes keep coming, which the transport's timeouts watch.
		client: &http.Client{Transport: &http.Transport{
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       30 * time.Second,
			DisableCompression:    true,
			TLSClientConfig:       tlsCfg,
		}},
		progress: progress,
	}
}

// get reads a small document fully, refusing more than limit bytes.
func (f *fetcher) get(ctx context.Context, u *url.URL, limit int64) ([]byte, error) {
	body, err := f.open(ctx, u, limit)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("GET %s: more than %d bytes", u, limit)
	}
	return data, nil
}

// download streams u into path, verifying its SHA-256. On any failure the
// partial file is removed, so a half-fetched image is never used.
func (f *fetcher) download(ctx context.Context, u *url.URL, wantHex, path string, limit int64) (n int64, err error) {
	body, err := f.open(ctx, u, limit)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		// Close before kexec_file_load sees the file: the kernel refuses
		// files that are open for writing (ETXTBSY), like execve.
		if cerr := out.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	return f.copyChecked(body, u, wantHex, out, limit)
}

// copyChecked copies body into w, refusing more than limit bytes and a
// SHA-256 other than wantHex (which a caller learns only at the end: w
// must not be trusted before copyChecked returned nil).
func (f *fetcher) copyChecked(body *sizedBody, u *url.URL, wantHex string, w io.Writer, limit int64) (int64, error) {
	h := sha256.New()
	p := &progressWriter{w: f.progress, name: u.Path, total: body.size, last: time.Now()}
	n, err := io.Copy(io.MultiWriter(w, h, p), io.LimitReader(body, limit+1))
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", u, n, err)
	}
	if n > limit {
		return n, fmt.Errorf("GET %s: more than %d bytes", u, limit)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantHex {
		return n, fmt.Errorf("GET %s: sha256 %s, want %s", u, got, wantHex)
	}
	return n, nil
}

type sizedBody struct {
	io.ReadCloser
	size int64
}

func (f *fetcher) open(ctx context.Context, u *url.URL, limit int64) (*sizedBody, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %d bytes announced, more than the %d allowed", u, resp.ContentLength, limit)
	}
	return &sizedBody{resp.Body, resp.ContentLength}, nil
}

// progressWriter prints a line at most every few seconds while a download
// runs, so an operator watching the console sees it is alive.
type progressWriter struct {
	w     io.Writer
	name  string
	total int64
	done  int64
	last  time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if p.w != nil && time.Since(p.last) >= 3*time.Second {
		p.last = time.Now()
		if p.total > 0 {
			fmt.Fprintf(p.w, "ferry: fetch %s: %d/%d MiB (%d%%)\n", p.name, p.done>>20, p.total>>20, p.done*100/p.total)
		} else {
			fmt.Fprintf(p.w, "ferry: fetch %s: %d MiB\n", p.name, p.done>>20)
		}
	}
	return len(b), nil
}

// waitReady asks u (HEAD) until the borrower answers 200: a 503 means
// the server's root is not ready yet (its state in api.HeaderRootState),
// to be asked again after Retry-After (clamped to 1-30 s). It waits as
// long as the borrower says so: the copy of a large root takes minutes,
// and the borrower ends the wait by its answer or by the lease's return.
// say is told the root's state the first time and when it changes, at
// most every 10 s.
func (f *fetcher) waitReady(ctx context.Context, u *url.URL, say func(state string)) (waited bool, err error) {
	var last string
	var lastAt time.Time
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, u.String(), nil)
		if err != nil {
			return waited, err
		}
		resp, err := f.client.Do(req)
		if err != nil {
			return waited, err
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return waited, nil
		case http.StatusServiceUnavailable:
		default:
			return waited, fmt.Errorf("HEAD %s: %s", u, resp.Status)
		}
		waited = true
		state := resp.Header.Get(api.HeaderRootState)
		if len(state) > 200 {
			state = state[:200]
		}
		if state == "" {
			state = "not ready"
		}
		if state != last && time.Since(lastAt) >= 10*time.Second || last == "" {
			say(state)
			last, lastAt = state, time.Now()
		}
		wait := time.Second
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			wait = time.Duration(min(max(n, 1), 30)) * time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return waited, ctx.Err()
		case <-t.C:
		}
	}
}

package borrower_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/api"
	"ferry/borrower"
	"ferry/initrd"
	"ferry/ipsec/ike"
	"ferry/lender"
)

// bigImage adds image "big" whose initrd is size bytes: far more than
// loopback's socket buffers, so a client that stops reading stalls the
// server's writes.
func (l *lab) bigImage(t *testing.T, size int) {
	k, _ := imageB(t, l.dir)
	var buf bytes.Buffer
	if _, err := initrd.WriteArchive(&buf, []initrd.File{{Path: "init", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
		{Path: "big", Mode: 0o644, Data: make([]byte, size)}}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(l.dir, "initrd-big.img")
	os.WriteFile(p, buf.Bytes(), 0o644)
	l.must(t, "borrower", "image", "add", "--dir", l.bdir, "big", "--kernel", k, "--initrd", p)
}

// getFrom opens a TLS connection to the image server from address from
// and sends GET path; it returns the connection and the answer's header.
func (l *lab) getFrom(t *testing.T, from, path string) (net.Conn, *http.Response) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", l.imageListen(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	resp, err := http.ReadResponse(bufioReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, resp
}

// TestImageDownloadIsCutWhenStalledNotWhenSlow: with image_stall_seconds
// 1, a client that stops reading loses its download; one that reads
// slowly, never pausing a whole second, gets all of it.
func TestImageDownloadIsCutWhenStalledNotWhenSlow(t *testing.T) {
	l := newLabWith(t, buildFerry(t), func(cfg map[string]any) { cfg["image_stall_seconds"] = 1 })
	const size = 48 << 20
	l.bigImage(t, size)
	out := l.must(t, "borrower", "lease", "request", "--dir", l.bdir, "--count", "1", "--image", "big")
	id := leaseLine.FindStringSubmatch(out)[1]
	var ls []api.Lease
	if err := api.UnixClient(lender.AdminSocket(l.ldir)).Call(t.Context(), "GET", "/admin/leases", nil, &ls); err != nil {
		t.Fatal(err)
	}
	a := &agent{mac: ls[0].Servers[0].MAC, boot: l.bootParams(t, ls[0].Servers[0].MAC)}
	if code, body := a.enroll(t); code != 200 {
		t.Fatalf("enroll: %d %s", code, body)
	}
	waitFor(t, "the key allowed", func() error {
		_, err := l.ferry("borrower", "lease", "show", "--dir", l.bdir, id)
		if data, _ := os.ReadFile(filepath.Join(l.dir, "allow.jsonl")); !strings.Contains(string(data), a.pin()) {
			return fmt.Errorf("not yet allowed (%v)", err)
		}
		return nil
	})
	vip := l.tunnelAddr(t, a.pin())
	l.gw.set(ike.SAStatus{Role: "responder", State: "established", Pin: a.pin(), VirtualIP: vip})

	c, resp := l.getFrom(t, vip, "/big/initrd.img")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /big/initrd.img: %s", resp.Status)
	}
	time.Sleep(4 * time.Second) // stalled: reads nothing
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, resp.Body)
	if n >= resp.ContentLength {
		t.Fatalf("a client that stopped reading for 4 s still got all %d bytes (err %v)", n, err)
	}
	t.Logf("stalled client: cut after %d of %d bytes (%v)", n, resp.ContentLength, err)

	c, resp = l.getFrom(t, vip, "/big/initrd.img")
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	var got int64
	for {
		k, err := io.CopyN(io.Discard, resp.Body, 1<<20)
		got += k
		if err != nil {
			break
		}
		time.Sleep(30 * time.Millisecond) // slow, never a whole second
	}
	if got != resp.ContentLength {
		t.Fatalf("a slow client got %d of %d bytes", got, resp.ContentLength)
	}
}

func TestRequestBodiesAreBounded(t *testing.T) {
	l := newLab(t, buildFerry(t))
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", borrower.AdminSocket(l.bdir))
	}}}
	body := `{"count": 1, "image": "b1", "idempotency_key": "` + strings.Repeat("k", 100<<10) + `"}`
	resp, err := hc.Post("http://admin/admin/leases", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(msg), "too large") {
		t.Errorf("a 100 KiB lease request: %s %s, want 400 naming the size", resp.Status, msg)
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	ic := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err = ic.Post("https://"+l.imageListen()+"/b1/vmlinuz", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("a request with a body to the image server: %s, want 400", resp.Status)
	}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 4096) }

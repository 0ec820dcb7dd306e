package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func serve(t *testing.T, body string) *url.URL {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/img")
	return u
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestDownloadChecksDigest(t *testing.T) {
	u := serve(t, "image bytes")
	path := filepath.Join(t.TempDir(), "img")
	if _, err := newFetcher(nil, nil).download(context.Background(), u, sum("image bytes"), path, 1<<20); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "image bytes" {
		t.Fatalf("file = %q", b)
	}
}

func TestDownloadRemovesFileOnDigestMismatch(t *testing.T) {
	u := serve(t, "tampered")
	path := filepath.Join(t.TempDir(), "img")
	_, err := newFetcher(nil, nil).download(context.Background(), u, sum("original"), path, 1<<20)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("err = %v, want a digest mismatch", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("a file with the wrong digest was left behind")
	}
}

func TestDownloadRefusesOversizedBody(t *testing.T) {
	u := serve(t, strings.Repeat("x", 100))
	path := filepath.Join(t.TempDir(), "img")
	_, err := newFetcher(nil, nil).download(context.Background(), u, sum(""), path, 10)
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v, want a size refusal", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("partial file left behind")
	}
}

func TestResolveRefusesOtherSchemes(t *testing.T) {
	base, _ := url.Parse("http://10.9.0.1:8080/lab/transfer.json")
	u, err := resolve(base, "vmlinuz-b")
	if err != nil || u.String() != "http://10.9.0.1:8080/lab/vmlinuz-b" {
		t.Fatalf("resolve = %v, %v", u, err)
	}
	if _, err := resolve(base, "file:///etc/shadow"); err == nil {
		t.Fatal("file: URL accepted")
	}
}

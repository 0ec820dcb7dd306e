package keeper

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const nfsRootMountinfo = `22 1 0:21 / / rw,relatime shared:1 - rootfs rootfs rw
40 22 0:33 / / rw,relatime - nfs4 10.9.0.1:/ rw,vers=4.1,addr=10.9.0.1
41 40 0:34 / /ferry rw - tmpfs none rw,mode=700
42 40 0:5 / /dev rw - devtmpfs devtmpfs rw
`

func TestRootMountPicksTheVisibleRoot(t *testing.T) {
	m, err := RootMount(strings.NewReader(nfsRootMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if m.FSType != "nfs4" || m.Source != "10.9.0.1:/" {
		t.Fatalf("root = %+v, want nfs4 from 10.9.0.1:/", m)
	}
}

func TestRootMountRefusesMalformedLine(t *testing.T) {
	_, err := RootMount(strings.NewReader("22 1 0:21 / / rw\n"))
	if err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("err = %v, want one naming line 1", err)
	}
}

func TestRootMountUnescapesSpaces(t *testing.T) {
	m, err := RootMount(strings.NewReader(`1 0 0:1 / / rw - nfs4 10.0.0.1:/my\040root rw` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Source != "10.0.0.1:/my root" {
		t.Fatalf("source = %q", m.Source)
	}
}

func TestStatusShowsRootAndState(t *testing.T) {
	dir := t.TempDir()
	mi := filepath.Join(dir, "mountinfo")
	os.WriteFile(mi, []byte(nfsRootMountinfo), 0o644)
	k := New(Options{Trace: "abc", StateDir: dir, Mountinfo: mi}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(k.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Trace != "abc" || st.RootFSType != "nfs4" || !st.StatePresent || st.PID != os.Getpid() {
		t.Fatalf("status = %+v", st)
	}
}

func FuzzRootMount(f *testing.F) {
	f.Add(nfsRootMountinfo)
	f.Add(`1 0 0:1 / / rw - nfs4 a\0 rw`)
	f.Fuzz(func(t *testing.T, s string) {
		RootMount(strings.NewReader(s))
	})
}

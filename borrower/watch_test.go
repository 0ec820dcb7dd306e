package borrower_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/api"
	"ferry/lender"
)

// With poll_seconds at 30, a server's key still reaches the gateway's
// allow list within seconds of its enrollment: the borrower's poll of a
// booting lease is held at the lender and answered at the enrollment.
// The lender is killed and restarted before the second server enrolls:
// the watch asks the new one, with the stored lease's tag, and loses
// nothing.
func TestEnrolledKeyReachesTheGatewayBeforeThePoll(t *testing.T) {
	bin := buildFerry(t)
	l := newLabWith(t, bin, func(cfg map[string]any) { cfg["poll_seconds"] = 30 })
	out := l.must(t, "borrower", "lease", "request", "--dir", l.bdir, "--count", "2", "--image", "b1", "--key", "watch-000001")
	m := leaseLine.FindStringSubmatch(out)
	if m == nil || m[2] != "active" {
		t.Fatalf("lease request printed %q, want an active lease", out)
	}
	for i, restart := range []bool{false, true} {
		if restart {
			l.lenderP.kill()
			l.startLender(t)
		}
		var ls []api.Lease
		if err := api.UnixClient(lender.AdminSocket(l.ldir)).Call(t.Context(), "GET", "/admin/leases", nil, &ls); err != nil || len(ls) != 1 {
			t.Fatalf("lender has %d leases (%v), want 1", len(ls), err)
		}
		time.Sleep(500 * time.Millisecond) // the borrower's poll is held by now
		a := &agent{mac: ls[0].Servers[i].MAC, boot: l.bootParams(t, ls[0].Servers[i].MAC)}
		if code, body := a.enroll(t); code != 200 {
			t.Fatalf("enrollment %d: %d %s", i+1, code, body)
		}
		enrolled := time.Now()
		allow := filepath.Join(l.dir, "allow.jsonl")
		for !strings.Contains(readFile(allow), a.pin()) {
			if time.Since(enrolled) > 10*time.Second {
				t.Fatalf("enrollment %d (lender restarted: %v): key %s not on the gateway's allow list 10 s later (poll_seconds 30):\n%s", i+1, restart, a.pin(), readFile(allow))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func readFile(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprint(err)
	}
	return string(data)
}

package borrower_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// When the lender puts a server in conflict (here: a second key enrolled
// with its boot's token), the borrower takes that server's key off the
// gateway and leaves the other servers' keys.
func TestKeyOfAServerInConflictLeavesTheGateway(t *testing.T) {
	l := newLab(t, buildFerry(t))
	id, agents := l.activeLease(t)
	victim, other := agents[0], agents[1]
	first := victim.pin()
	if code, body := victim.enroll(t); code != 409 || !strings.Contains(body, "conflict") {
		t.Fatalf("second key for the boot: %d %s, want 409 conflict", code, body)
	}
	waitFor(t, "the conflicted server's key off the allow list", func() error {
		data, _ := os.ReadFile(filepath.Join(l.dir, "allow.jsonl"))
		if strings.Contains(string(data), first) {
			return fmt.Errorf("allow list still has %s:\n%s", first, data)
		}
		return nil
	})
	data, _ := os.ReadFile(filepath.Join(l.dir, "allow.jsonl"))
	if !strings.Contains(string(data), other.pin()) {
		t.Fatalf("the other server's key left the allow list too:\n%s", data)
	}
	if out := l.must(t, "borrower", "lease", "show", "--dir", l.bdir, id); !strings.Contains(out, "conflict") {
		t.Fatalf("lease show does not show the conflict:\n%s", out)
	}
}

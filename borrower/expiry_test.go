package borrower_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"ferry/api"
	"ferry/borrower"
	"ferry/lender"
	"ferry/store"
)

// activeLease requests one lease of two servers and enrolls both; it
// returns the lease id once the borrower has allowed both keys.
func (l *lab) activeLease(t *testing.T) (string, []*agent) {
	out := l.must(t, "borrower", "lease", "request", "--dir", l.bdir, "--count", "2", "--image", "b1")
	m := leaseLine.FindStringSubmatch(out)
	if m == nil || m[2] != "active" {
		t.Fatalf("lease request printed %q, want an active lease", out)
	}
	var ls []api.Lease
	if err := api.UnixClient(lender.AdminSocket(l.ldir)).Call(t.Context(), "GET", "/admin/leases", nil, &ls); err != nil || len(ls) != 1 {
		t.Fatalf("lender has %d leases (%v), want 1", len(ls), err)
	}
	var agents []*agent
	for _, s := range ls[0].Servers {
		a := &agent{mac: s.MAC, boot: l.bootParams(t, s.MAC)}
		if code, body := a.enroll(t); code != 200 {
			t.Fatalf("enroll %s: %d %s", s.MAC, code, body)
		}
		agents = append(agents, a)
	}
	waitFor(t, "both keys on the allow list", func() error {
		data, _ := os.ReadFile(filepath.Join(l.dir, "allow.jsonl"))
		for _, a := range agents {
			if !strings.Contains(string(data), a.pin()) {
				return fmt.Errorf("allow list lacks %s:\n%s", a.pin(), data)
			}
		}
		return nil
	})
	return m[1], agents
}

func (l *lab) metrics(t *testing.T) string {
	resp, err := http.Get("http://" + l.statusListen() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// Every scrape passes client_golang's linter (promtool's rules).
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	return string(body)
}

var enrolledServers = regexp.MustCompile(`(?m)^ferry_borrower_servers\{phase="enrolled"\} 2$`)

func TestMetricsGaugesSurviveRestart(t *testing.T) {
	l := newLab(t, buildFerry(t))
	l.activeLease(t)
	waitFor(t, "metrics to show two enrolled servers", func() error {
		if m := l.metrics(t); !enrolledServers.MatchString(m) {
			return fmt.Errorf("metrics:\n%s", m)
		}
		return nil
	})
	l.borrowerP.kill()
	l.startBorrower(t)
	m := l.metrics(t)
	for _, want := range []string{`ferry_borrower_leases{state="active"} 1`, `ferry_borrower_leases{state="returned"} 0`,
		"ferry_borrower_leases_expired_total 0", "since this borrower process started (restarts at 0)"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics after a restart lack %q:\n%s", want, m)
		}
	}
	if !enrolledServers.MatchString(m) {
		t.Errorf("metrics after a restart lost the servers by phase:\n%s", m)
	}
}

func TestExpiredLeaseIsReturnedEvenAcrossRestart(t *testing.T) {
	l := newLab(t, buildFerry(t))
	id, agents := l.activeLease(t)
	l.borrowerP.kill()
	setLenderEnd(t, l.bdir, id, time.Now().Add(-time.Second))
	l.startBorrower(t)
	waitFor(t, "the expired lease to be returned", func() error {
		out, err := l.ferry("borrower", "lease", "show", "--dir", l.bdir, id)
		if err == nil && !strings.Contains(out, "state returned") {
			err = fmt.Errorf("lease show:\n%s", out)
		}
		return err
	})
	l.checkReturned(t, id, agents, 0)
	if m := l.metrics(t); !strings.Contains(m, "ferry_borrower_leases_expired_total 1") {
		t.Errorf("metrics do not count the expiry:\n%s", m)
	}
}

// setLenderEnd moves a lease's end, as the borrower recorded it from the
// lender, while the borrower is down: time passing.
func setLenderEnd(t *testing.T, dir, id string, end time.Time) {
	st, err := store.Open(borrower.StorePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Update(context.Background(), func(tx store.Tx) error {
		var bl borrower.Lease
		if err := tx.Get(store.Leases, id, &bl); err != nil {
			return err
		}
		bl.Lender.Expires = end
		return tx.Put(store.Leases, id, bl)
	})
	if err != nil {
		t.Fatal(err)
	}
}

package borrower_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ferry/api"
	"ferry/lender"
)

// chromium is the headless browser scripts/ci-deps.sh installs.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium (scripts/ci-deps.sh installs it)")
	return ""
}

// The status pages, rendered by a real headless browser: a real lender's
// servers, its lease, each server's phase timeline and the last errors,
// then the real borrower's view of the same lease; what an agent reported
// shows as text, never markup.
func TestStatusPagesInHeadlessBrowser(t *testing.T) {
	browser := chromium(t)
	l := newLab(t, buildFerry(t))
	blease, agents := l.activeLease(t)
	var ls []api.Lease
	if err := api.UnixClient(lender.AdminSocket(l.ldir)).Call(t.Context(), "GET", "/admin/leases", nil, &ls); err != nil || len(ls) != 1 {
		t.Fatalf("lender leases: %v %d", err, len(ls))
	}
	lease := ls[0]
	a := agents[0]
	start := time.Now().Add(-5 * time.Second)
	for _, p := range []api.PhaseReport{
		{Phase: "fetch-b", Start: start, End: start.Add(3 * time.Second), Bytes: 31 << 20},
		{Phase: "nfs-mount", Start: start.Add(3 * time.Second), End: start.Add(4 * time.Second), Error: "<b>mount refused</b> by 10.8.0.2"},
	} {
		p.LeaseID, p.ServerID = a.boot.LeaseID, a.boot.ServerID
		if code, body := a.post(t, l.agentURL+api.PathPhase, &a.cert, p, nil); code != 204 {
			t.Fatalf("phase %s: %d %s", p.Phase, code, body)
		}
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser),
		chromedp.NoSandbox, // root in CI: chromium refuses its sandbox there
		chromedp.Flag("headless", true), chromedp.DisableGPU)
	actx, cancelA := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+l.lenderStatus+"/")); err != nil {
		t.Fatalf("headless chromium on the status page: %v", err)
	}
	text := func(a chromedp.Action[string]) string {
		t.Helper()
		s, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("headless chromium: %v", err)
		}
		return s
	}
	title := text(chromedp.Title())
	servers := text(chromedp.Text(chromedp.CSS("#servers")))
	leases := text(chromedp.Text(chromedp.CSS("#lease-" + lease.ID)))
	errs := text(chromedp.Text(chromedp.CSS("#errors")))
	bold, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("b, script").length`))
	if err != nil {
		t.Fatal(err)
	}
	if title != "ferry lender status" {
		t.Errorf("title %q", title)
	}
	for _, s := range lease.Servers {
		if !strings.Contains(servers, s.MAC) || !strings.Contains(leases, s.MAC) {
			t.Errorf("server %s missing from the servers table or the lease:\n%s\n%s", s.MAC, servers, leases)
		}
	}
	for _, want := range []string{lease.ID, "active", "timeline of " + a.mac, "fetch-b", "32505856", "nfs-mount", "<b>mount refused</b> by 10.8.0.2"} {
		if !strings.Contains(leases, want) {
			t.Errorf("lease section lacks %q:\n%s", want, leases)
		}
	}
	if !strings.Contains(errs, "<b>mount refused</b> by 10.8.0.2") || !strings.Contains(errs, "phase nfs-mount") {
		t.Errorf("last errors lack the failed phase:\n%s", errs)
	}
	if bold != 0 {
		t.Errorf("%d <b>/<script> elements in the DOM: a reported error became markup", bold)
	}

	// The borrower's page: its lease, the lender's lease id, each server
	// with its tunnel address and timeline, once the borrower has synced
	// the phases from the lender.
	var page string
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := chromedp.Do(ctx, chromedp.Navigate("http://"+l.statusListen()+"/")); err != nil {
			t.Fatalf("headless chromium on the borrower's status page: %v", err)
		}
		page = text(chromedp.Text(chromedp.CSS("#lease-" + blease)))
		if strings.Contains(page, "nfs-mount") || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, want := range []string{blease, "active", lease.ID, agents[0].mac, agents[1].mac, "127.44.", "fetch-b", "<b>mount refused</b> by 10.8.0.2"} {
		if !strings.Contains(page, want) {
			t.Errorf("borrower's lease section lacks %q:\n%s", want, page)
		}
	}
	if title := text(chromedp.Title()); title != "ferry borrower status" {
		t.Errorf("borrower page title %q", title)
	}
	if bold, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("b, script").length`)); err != nil || bold != 0 {
		t.Errorf("borrower page: %d <b>/<script> elements (%v)", bold, err)
	}
}

package applets

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"ferry/api"
	"ferry/borrower"
	"ferry/catalog"
)

func borrowerTree() Command {
	return Command{Name: "borrower", Summary: "borrower manager: image B, NFS roots, leases", Help: borrowerHelp,
		Sub: []Command{
			{Name: "init", Summary: "write a starting configuration and the site's keys and certificates", Raw: func(_ context.Context, env *Env, args []string) error { return borrowerInit(env, args) }},
			{Name: "serve", Summary: "run the borrower manager (--check: check the configuration and exit)", Args: "[--config FILE] [--check]", Raw: borrowerServe},
			{Name: "image", Summary: "the image B catalogue", Sub: []Command{
				{Name: "add", Summary: "check and add an image B", Args: "NAME", Setup: borrowerImageAdd},
				{Name: "list", Summary: "every image B", Setup: borrowerImageList},
			}},
			{Name: "lease", Summary: "leases of lent servers", Sub: []Command{
				{Name: "request", Summary: "ask the lender for servers, then copy their roots while they boot", Setup: borrowerLeaseRequest, Help: exitCodesHelp},
				{Name: "list", Summary: "every lease", Setup: borrowerLeaseList},
				{Name: "show", Summary: "a lease: every server, its phase, error, tunnel and timings", Args: "ID", Setup: borrowerLeaseShow},
				{Name: "extend", Summary: "lengthen a lease", Args: "ID", Setup: borrowerLeaseExtend},
				{Name: "return", Summary: "shut the servers down, cut them off and give them back", Args: "ID", Setup: borrowerLeaseReturn, Help: exitCodesHelp},
			}},
		}}
}

const exitCodesHelp = `exit status: 0 done, 1 failed (refused, a server in power-error,
boot-timeout, conflict or a failed phase, or --wait timed out), 2 usage,
3 accepted and still being retried (the lender did not answer; the
manager retries with the same idempotency key: run 'lease show ID').
With --wait, one line per phase as it happens, and a progress line
while a step takes long; with -o json those lines go to stderr and the
lease to stdout at the end.`

// borrowerAdmin declares --dir and returns the admin client maker.
func borrowerAdmin(env *Env, fs *flag.FlagSet) func() (*api.Client, error) {
	dir := fs.String("dir", env.borrowerDir(), "borrower state directory (or $FERRY_BORROWER_DIR)")
	return func() (*api.Client, error) {
		if *dir == "" {
			return nil, usagef("--dir is required")
		}
		return borrowerAdminClient(*dir), nil
	}
}

func borrowerImageAdd(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	dir := fs.String("dir", env.borrowerDir(), "borrower state directory (or $FERRY_BORROWER_DIR)")
	kernel := fs.String("kernel", "", "image B kernel (bzImage)")
	initrd := fs.String("initrd", "", "image B initramfs")
	cmdline := fs.String("cmdline", "", "image B kernel command line")
	modules := fs.String("modules", "", "B's kernel modules tree, to bundle what the transfer needs")
	o := outputFlags(fs)
	return func(ctx context.Context, pos []string) error {
		if *dir == "" {
			return usagef("--dir is required")
		}
		if len(pos) != 1 || *kernel == "" || *initrd == "" {
			return usagef("image add: want NAME, --kernel and --initrd")
		}
		if err := o.check(); err != nil {
			return err
		}
		cat, err := catalog.Open(borrower.ImagesDir(*dir), env.Log)
		if err != nil {
			return err
		}
		img, err := cat.Add(ctx, pos[0], *kernel, *initrd, *cmdline, *modules)
		if err != nil {
			return err
		}
		if ok, err := o.json(env, img); ok {
			return err
		}
		fmt.Fprintf(env.Stdout, "image %s: kernel %s sha256 %s, initrd sha256 %s\n", img.Name, img.Release, img.Kernel.SHA256, img.Initrd.SHA256)
		return nil
	}
}

func borrowerImageList(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	dir := fs.String("dir", env.borrowerDir(), "borrower state directory (or $FERRY_BORROWER_DIR)")
	o := outputFlags(fs)
	return func(ctx context.Context, pos []string) error {
		if *dir == "" {
			return usagef("--dir is required")
		}
		if err := o.check(); err != nil {
			return err
		}
		cat, err := catalog.Open(borrower.ImagesDir(*dir), env.Log)
		if err != nil {
			return err
		}
		imgs, err := cat.List(ctx)
		if err != nil {
			return err
		}
		if imgs == nil {
			imgs = []catalog.Image{}
		}
		if ok, err := o.json(env, imgs); ok {
			return err
		}
		var rows [][]string
		for _, i := range imgs {
			rows = append(rows, []string{i.Name, i.Release, i.Kernel.SHA256, i.Initrd.SHA256, i.Cmdline})
		}
		return o.table(env, []column{{name: "NAME"}, {name: "RELEASE"}, {name: "KERNEL_SHA256", wide: true},
			{name: "INITRD_SHA256", wide: true}, {name: "CMDLINE"}}, rows)
	}
}

// waitFlag is --wait or --wait=TIMEOUT: a boolean flag that may carry a
// duration.
type waitFlag struct {
	on      bool
	timeout time.Duration
}

func (w *waitFlag) IsBoolFlag() bool { return true }
func (w *waitFlag) String() string {
	if w == nil || !w.on {
		return ""
	}
	return w.timeout.String()
}
func (w *waitFlag) Set(v string) error {
	switch v {
	case "true":
		w.on = true
		return nil
	case "false":
		w.on = false
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("%q: want --wait or --wait=DURATION (e.g. 20m)", v)
	}
	w.on, w.timeout = true, d
	return nil
}

func borrowerLeaseRequest(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	admin := borrowerAdmin(env, fs)
	count := fs.Int("count", 1, "number of servers")
	image := fs.String("image", "", "image B name in the catalogue")
	root := fs.String("root", "", "NFS root template directory (default: config default_template)")
	key := fs.String("key", "", "idempotency key: retry with the same key to never lease twice")
	pool := fs.String("pool", "", "the lender's pool to lease from (default: any)")
	duration := fs.Duration("duration", 0, "how long the lease lasts, e.g. 72h (default: the configured lease length; at most 90 days)")
	wait := &waitFlag{timeout: 30 * time.Minute}
	fs.Var(wait, "wait", "wait until every server has its root (switch-root), printing each phase; --wait=TIMEOUT (default 30m)")
	o := outputFlags(fs)
	return func(ctx context.Context, pos []string) error {
		c, err := o.connect(admin)
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return usagef("lease request takes no arguments (got %q)", pos)
		}
		if *duration < 0 || (*duration > 0 && *duration < time.Minute) {
			return usagef("--duration %s: want at least 1m", *duration)
		}
		var l borrower.LeaseView
		req := borrower.Request{Key: *key, Count: *count, Image: *image, Template: *root, Pool: *pool,
			DurationSeconds: int64(duration.Seconds())}
		if err := c.Call(ctx, "POST", "/admin/leases", req, &l); err != nil {
			return err
		}
		if wait.on {
			return waitLease(ctx, env, o, c, l, wait.timeout, requestDone, false)
		}
		if err := printBorrowerLease(env, o, l); err != nil {
			return err
		}
		return leaseExit(l)
	}
}

// leaseExit is the exit status of a lease as request and return print it.
func leaseExit(l borrower.LeaseView) error {
	switch l.State {
	case borrower.StateRequesting:
		return &ExitError{Code: ExitRetrying, Err: fmt.Errorf("lease %s accepted, not yet made at the lender; retrying: %s", l.ID, l.Error)}
	case borrower.StateFailed:
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("lease %s failed: %s", l.ID, l.Error)}
	}
	return nil
}

func borrowerLeaseList(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	return adminList(env, fs, borrowerAdmin(env, fs), "/admin/leases", []column{{name: "LEASE"}, {name: "STATE"}, {name: "SERVERS"},
		{name: "IMAGE"}, {name: "POOL", wide: true}, {name: "LENDER_LEASE"}, {name: "CREATED"}, {name: "EXPIRES", wide: true},
		{name: "KEY", wide: true}, {name: "ERROR"}},
		func(ls []borrower.Lease) (rows [][]string) {
			for _, l := range ls {
				rows = append(rows, []string{l.ID, l.State, fmt.Sprint(l.Count), l.Image, l.Pool, l.Lender.ID,
					l.Created.Format(time.RFC3339), expires(l.Lender), l.Key, l.Error})
			}
			return rows
		})
}

func expires(l api.Lease) string {
	if l.Expires.IsZero() {
		return ""
	}
	return l.Expires.Format(time.RFC3339)
}

func borrowerLeaseShow(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	return adminOne(env, fs, borrowerAdmin(env, fs), "lease ID", func(ctx context.Context, c *api.Client, id string) (borrower.LeaseView, error) {
		var l borrower.LeaseView
		err := c.Call(ctx, "GET", "/admin/leases/"+url.PathEscape(id), nil, &l)
		return l, err
	}, func(o *output, l borrower.LeaseView) error { return printBorrowerLease(env, o, l) })
}

func borrowerLeaseExtend(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	admin := borrowerAdmin(env, fs)
	duration := fs.Duration("duration", 0, "how much longer, e.g. 72h (the whole lease stays within 90 days)")
	o := outputFlags(fs)
	return func(ctx context.Context, pos []string) error {
		c, err := admin()
		if err != nil {
			return err
		}
		id, err := oneArg(pos, "lease ID")
		if err != nil {
			return err
		}
		if *duration <= 0 {
			return usagef("lease extend: want --duration")
		}
		if err := o.check(); err != nil {
			return err
		}
		var l borrower.LeaseView
		if err := c.Call(ctx, "POST", "/admin/leases/"+url.PathEscape(id)+"/extend", map[string]int64{"duration_seconds": int64(duration.Seconds())}, &l); err != nil {
			return err
		}
		return printBorrowerLease(env, o, l)
	}
}

func borrowerLeaseReturn(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	admin := borrowerAdmin(env, fs)
	wait := &waitFlag{timeout: 10 * time.Minute}
	fs.Var(wait, "wait", "wait until the lender has powered every server off and freed it, printing each step; --wait=TIMEOUT (default 10m)")
	o := outputFlags(fs)
	return func(ctx context.Context, pos []string) error {
		c, err := admin()
		if err != nil {
			return err
		}
		id, err := oneArg(pos, "lease ID")
		if err != nil {
			return err
		}
		if err := o.check(); err != nil {
			return err
		}
		var l borrower.LeaseView
		if err := c.Call(ctx, "POST", "/admin/leases/"+url.PathEscape(id)+"/return", nil, &l); err != nil {
			return err
		}
		if wait.on {
			return waitLease(ctx, env, o, c, l, wait.timeout, returnDone, true)
		}
		return printBorrowerLease(env, o, l)
	}
}

// printBorrowerLease shows a lease, every server, its phases, error and
// timings, and, for show, each server's tunnel as the gateway reports it.
func printBorrowerLease(env *Env, o *output, l borrower.LeaseView) error {
	if ok, err := o.json(env, l); ok {
		return err
	}
	fmt.Fprintf(env.Stdout, "lease %s  state %s  key %s  lender lease %s  expires %s\n",
		l.ID, l.State, l.Key, l.Lender.ID, l.Lender.Expires.Format(time.RFC3339))
	if l.Stale != "" {
		fmt.Fprintf(env.Stdout, "lender unreachable: the lease as last stored (%s)\n", l.Stale)
	}
	if l.Error != "" {
		fmt.Fprintf(env.Stdout, "error: %s\n", l.Error)
	}
	var rows [][]string
	for i, s := range l.Lender.Servers {
		addr, tunnel := "", ""
		if i < len(l.Addrs) {
			addr = l.Addrs[i].String()
		}
		if i < len(l.Tunnels) && l.Tunnels[i].Server == s.ID {
			tunnel = tunnelText(l.Tunnels[i])
		}
		root := ""
		if i < len(l.RootStates) {
			root = l.RootStates[i].Text()
		}
		rows = append(rows, []string{s.ID, s.MAC, s.Phase, root, addr, tunnel, s.SPKIPin, s.Error})
	}
	err := o.table(env, []column{{name: "SERVER"}, {name: "MAC"}, {name: "PHASE"}, {name: "ROOT"}, {name: "TUNNEL_ADDRESS"}, {name: "TUNNEL"},
		{name: "SPKI_SHA256"}, {name: "ERROR"}}, rows)
	if err != nil || o.noHeaders {
		return err
	}
	// Each phase with its start counted from the lease request: the
	// transfer's timeline (scripts/full-e2e.sh reads these lines).
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	for i, s := range l.Lender.Servers {
		if len(s.Phases) > 0 {
			fmt.Fprintf(tw, "\n%s phases:\n", s.ID)
		}
		for _, p := range s.Phases {
			status := "ok"
			if p.Error != "" {
				status = "failed: " + p.Error
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d bytes\t%s\n", p.Phase, p.End.Sub(p.Start), status, p.Bytes, sinceRequest(l.Lender.Created, p.Start))
		}
		if i < len(l.RootStates) && !l.RootStates[i].Ready.IsZero() && len(s.Phases) > 0 {
			// The borrower's own event among the server's phases: its
			// copy of the root (how long it took, ready at +T s).
			r := l.RootStates[i]
			fmt.Fprintf(tw, "  root-ready\t%s\tok\t%d bytes\t%s\n", r.Ready.Sub(r.Started).Round(time.Millisecond),
				r.Copied, sinceRequest(l.Lender.Created, r.Ready))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(l.Shutdown) > 0 {
		fmt.Fprintln(env.Stdout)
	}
	for _, d := range l.Shutdown {
		fmt.Fprintf(env.Stdout, "shutdown %s  %s  %.1f s  %s\n", d.Server, d.Outcome, d.Seconds, d.Detail)
	}
	if len(l.Events) == 0 {
		return nil
	}
	const shown = 10
	fmt.Fprintf(env.Stdout, "\nhistory at the lender (last %d of %d; -o json: all):\n", min(shown, len(l.Events)), len(l.Events))
	var hist [][]string
	for _, e := range l.Events[max(0, len(l.Events)-shown):] {
		hist = append(hist, []string{e.At.Format(time.RFC3339), e.Kind, e.MAC, e.What, e.Error})
	}
	return o.table(env, []column{{name: "TIME"}, {name: "KIND"}, {name: "MAC"}, {name: "WHAT"}, {name: "ERROR"}}, hist)
}

// phaseLine is one phase as the console prints it.
func phaseLine(p api.PhaseReport) string {
	if p.Error != "" {
		return fmt.Sprintf("phase %s failed: %s", p.Phase, p.Error)
	}
	s := fmt.Sprintf("phase %s ok in %s", p.Phase, p.End.Sub(p.Start).Round(time.Millisecond))
	if p.Bytes > 0 {
		s += fmt.Sprintf(" (%d bytes)", p.Bytes)
	}
	return s
}

// sinceRequest is when a phase began, counted from the lease request:
// "at +12.3 s", the transfer's timeline.
func sinceRequest(created, start time.Time) string {
	if created.IsZero() || start.IsZero() {
		return ""
	}
	return fmt.Sprintf("at +%.1f s", start.Sub(created).Seconds())
}

// tunnelText is one server's tunnel for lease show: "up since T at ADDR
// (data alive)", "down", or "unknown (why)".
func tunnelText(t borrower.TunnelState) string {
	out := t.State
	if t.State == "up" {
		if !t.Since.IsZero() {
			out += " since " + t.Since.Format(time.RFC3339)
		}
		out += " at " + t.Address
	}
	if t.Detail != "" {
		out += " (" + t.Detail + ")"
	}
	return out
}

// failedPhase says why a server stopped ("" while it has not).
func failedPhase(s api.LeaseServer) string {
	switch {
	case s.Phase == "power-error" || s.Phase == "boot-timeout" || s.Phase == "conflict":
		return s.Phase + ": " + s.Error
	case strings.HasSuffix(s.Phase, ":failed"):
		return s.Phase + ": " + s.Error
	}
	return ""
}

// requestDone: every server has switched to its root.
func requestDone(l borrower.LeaseView) (bool, string) {
	switch l.State {
	case borrower.StateFailed:
		return true, "lease failed: " + l.Error
	case borrower.StateReturning, borrower.StateReturned:
		return true, "lease " + l.State + " while waiting for it"
	case borrower.StateRequesting:
		return false, ""
	}
	all := len(l.Lender.Servers) > 0
	for _, s := range l.Lender.Servers {
		if why := failedPhase(s); why != "" {
			return true, s.ID + " " + s.MAC + ": " + why
		}
		all = all && s.Phase == "switch-root"
	}
	return all, ""
}

// returnDone: the lender has powered every server off and freed it.
func returnDone(l borrower.LeaseView) (bool, string) {
	all := l.State == borrower.StateReturned
	for _, s := range l.Lender.Servers {
		if s.Phase == "power-error" {
			return true, s.ID + " " + s.MAC + ": power-error: " + s.Error
		}
		all = all && s.Phase == "returned"
	}
	return all, ""
}

// waitPoll is how often --wait asks the borrower manager (which asks the
// lender); waitProgress how long a step may be quiet before a progress line.
const (
	waitPoll     = 2 * time.Second
	waitProgress = 30 * time.Second
)

// waitLease polls the lease until done says so or timeout, printing each
// new lease state, server state and phase once, as it appears; quiet
// skips what l already shows (a return need not replay the boot).
func waitLease(ctx context.Context, env *Env, o *output, c *api.Client, l borrower.LeaseView, timeout time.Duration,
	done func(borrower.LeaseView) (bool, string), quiet bool) error {
	lines := env.Stdout
	if o.format == "json" {
		lines = env.Stderr
	}
	start := time.Now()
	last := start
	say := func(format string, a ...any) {
		fmt.Fprintf(lines, "%s %s\n", time.Since(start).Round(time.Second), fmt.Sprintf(format, a...))
		last = time.Now()
	}
	state := ""
	phase := map[string]string{}
	reports := map[string]int{}
	if quiet {
		for _, s := range l.Lender.Servers {
			reports[s.ID], phase[s.ID] = len(s.Phases), s.Phase
		}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if l.State != state {
			state = l.State
			msg := "lease " + l.ID + " " + state
			if l.Error != "" && state != borrower.StateActive {
				msg += ": " + l.Error
			}
			say("%s", msg)
		}
		for _, s := range l.Lender.Servers {
			for _, p := range s.Phases[min(reports[s.ID], len(s.Phases)):] {
				say("%s %s", s.ID, phaseLine(p))
			}
			reports[s.ID] = len(s.Phases)
			if s.Phase != phase[s.ID] {
				phase[s.ID] = s.Phase
				if n := len(s.Phases); n > 0 && strings.TrimSuffix(s.Phase, ":failed") == s.Phases[n-1].Phase && s.Error == "" {
					continue // its report was just printed
				}
				msg := s.ID + " " + s.MAC + " " + s.Phase
				if s.Error != "" {
					msg += ": " + s.Error
				}
				say("%s", msg)
			}
		}
		if ok, why := done(l); ok {
			if err := printBorrowerLease(env, o, l); err != nil {
				return err
			}
			if why != "" {
				return &ExitError{Code: ExitFailed, Err: fmt.Errorf("%s", why)}
			}
			return nil
		}
		if time.Since(last) >= waitProgress {
			var at []string
			for _, s := range l.Lender.Servers {
				at = append(at, s.ID+" "+s.Phase)
			}
			if len(at) == 0 {
				at = []string{"lease " + l.State}
			}
			say("still waiting (%s)", strings.Join(at, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("lease %s: not done after %s (it goes on: ferry borrower lease show %s)", l.ID, timeout, l.ID)}
		case <-time.After(waitPoll):
		}
		var next borrower.LeaseView
		if err := c.Call(ctx, "GET", "/admin/leases/"+url.PathEscape(l.ID), nil, &next); err != nil {
			say("lease %s: %v (asking again)", l.ID, err)
			continue
		}
		l = next
	}
}

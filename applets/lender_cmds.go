package applets

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"time"

	"ferry/api"
	"ferry/lender"
	"ferry/power"
)

func lenderTree() Command {
	return Command{Name: "lender", Summary: "lender manager: inventory, leases, one-time certificates", Help: lenderHelp,
		Sub: []Command{
			{Name: "init", Summary: "make every key, certificate and the configuration of a lender site", Args: "--host ADDR [--name ORG --m2m ADDR --interface IF]",
				Raw: func(_ context.Context, env *Env, args []string) error { return lenderInit(env, args) }},
			{Name: "serve", Summary: "run the lender manager, or --check its configuration", Args: "[--config FILE] [--check]", Raw: lenderServe},
			{Name: "borrower", Summary: "the borrower organisations the m2m listener admits", Sub: []Command{
				{Name: "add", Summary: "admit a borrower: its CA into borrowers_dir (reload to apply)", Args: "NAME CA.pem",
					Complete: []string{"", "file"}, Raw: func(_ context.Context, env *Env, args []string) error { return lenderBorrowerAdd(env, args) }},
			}},
			{Name: "server", Summary: "the inventory: servers, their power and their history", Sub: []Command{
				{Name: "add", Summary: "add a server to a pool", Help: power.Help(), Setup: lenderServerAdd},
				{Name: "list", Summary: "every server, its state and last error", Setup: lenderServerList},
				{Name: "show", Summary: "one server, its last error and its history", Args: "MAC", Setup: lenderServerShow},
				{Name: "events", Summary: "a server's history: states, power actions, phases, errors", Args: "MAC", Setup: lenderServerEvents},
				{Name: "remove", Summary: "take a free server out of the inventory", Args: "MAC", Setup: lenderServerMAC("remove")},
				{Name: "clear", Summary: "start a new boot after a conflict, power-error or boot-timeout", Args: "MAC", Setup: lenderServerMAC("clear")},
				{Name: "power", Summary: "switch a server on or off, read its power state, or check its driver", Args: "MAC on|off|status|check",
					Complete: []string{"", "on off status check"}, Setup: lenderServerPower},
				{Name: "validate", Summary: "check each server's power driver: its options and that its BMC answers", Args: "[MAC...]", Setup: lenderServerValidate},
				{Name: "maintenance", Summary: "take a free server out of lending (on) or put it back (off)", Args: "MAC on|off",
					Complete: []string{"", "on off"}, Setup: lenderServerMaintenance},
			}},
			{Name: "boot", Summary: "the kernel parameters of a pending boot (JSON)", Args: "MAC", Setup: lenderBootCmd},
			{Name: "lease", Summary: "leases as the lender sees them", Sub: []Command{
				{Name: "list", Summary: "every lease, server and phase", Setup: lenderLeaseList},
				{Name: "show", Summary: "one lease: its servers, phases, errors and history", Args: "ID", Setup: lenderLeaseShow},
				{Name: "events", Summary: "a lease's history", Args: "ID", Setup: lenderLeaseEvents},
			}},
		}}
}

// powerFor makes each server's power driver. Its log lines carry the
// server's MAC and ID, and the manual driver's instructions name the
// server unless its options give a name.
func powerFor(env *Env) lender.PowerFunc {
	return func(s lender.Server) (lender.PowerDriver, error) {
		opts := s.PowerOpts
		if s.Power == "manual" && opts["name"] == "" {
			opts = maps.Clone(opts)
			if opts == nil {
				opts = map[string]string{}
			}
			opts["name"] = fmt.Sprintf("server %s (%s)", s.ID, s.MAC)
		}
		return power.New(s.Power, opts, env.Log.With("mac", s.MAC, "server", s.ID))
	}
}

// lenderAdmin declares --dir and returns the admin client maker.
func lenderAdmin(env *Env, fs *flag.FlagSet) func() (*api.Client, error) {
	dir := fs.String("dir", env.lenderDir(), "state directory of the running lender (or $FERRY_LENDER_DIR)")
	return func() (*api.Client, error) {
		if *dir == "" {
			return nil, usagef("--dir is required")
		}
		return lenderAdminClient(*dir), nil
	}
}

// oneMAC checks the positionals are one MAC address.
func oneArg(pos []string, what string) (string, error) {
	if len(pos) != 1 {
		return "", usagef("want one %s, got %d arguments", what, len(pos))
	}
	return pos[0], nil
}

func lenderServerAdd(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	admin := lenderAdmin(env, fs)
	mac := fs.String("mac", "", "MAC address the server PXE boots from")
	drv := fs.String("power", "", "power driver: "+strings.Join(power.Drivers(), ", ")+" (options below)")
	pool := fs.String("pool", "default", "pool the server is lent from")
	opts := kvFlag{}
	fs.Var(opts, "power-opt", "power driver option `KEY=VALUE` (repeatable)")
	o := outputFlags(fs)
	return func(ctx context.Context, pos []string) error {
		c, err := o.connect(admin)
		if err != nil {
			return err
		}
		var s lender.Server
		if err := c.Call(ctx, "POST", "/admin/servers", lender.Server{MAC: *mac, Power: *drv, Pool: *pool, PowerOpts: opts}, &s); err != nil {
			return err
		}
		if ok, err := o.json(env, s); ok {
			return err
		}
		fmt.Fprintf(env.Stdout, "added %s (%s) to pool %s\n", s.MAC, s.ID, s.Pool)
		return nil
	}
}

var serverColumns = []column{{name: "MAC"}, {name: "ID", wide: true}, {name: "POOL"}, {name: "POWER"}, {name: "STATE"},
	{name: "PHASE", wide: true}, {name: "LEASE"}, {name: "LAST_ERROR_AT", wide: true}, {name: "LAST_ERROR"}}

func serverRow(s lender.Server) []string {
	at := ""
	if !s.LastErrorAt.IsZero() {
		at = s.LastErrorAt.Format(time.RFC3339)
	}
	last := s.LastError
	if s.State == lender.ServerMaintenance && s.Note != "" {
		last = "maintenance: " + s.Note
	}
	return []string{s.MAC, s.ID, s.Pool, s.Power, s.State, s.Phase, s.LeaseID, at, last}
}

func lenderServerList(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	return adminList(env, fs, lenderAdmin(env, fs), "/admin/servers", serverColumns, func(ss []lender.Server) (rows [][]string) {
		for _, s := range ss {
			rows = append(rows, serverRow(s))
		}
		return rows
	})
}

// ServerDetail is `server show -o json`: the server and its history.
type ServerDetail struct {
	lender.Server
	Events []lender.Event `json:"events"`
}

func lenderServerShow(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	n := fs.Int("events", 20, "how many of the latest events the table shows (json: all)")
	return adminOne(env, fs, lenderAdmin(env, fs), "MAC", func(ctx context.Context, c *api.Client, mac string) (ServerDetail, error) {
		var d ServerDetail
		if err := c.Call(ctx, "GET", "/admin/servers/"+url.PathEscape(mac), nil, &d.Server); err != nil {
			return d, err
		}
		var err error
		d.Events, err = getEvents(ctx, c, "/admin/servers/"+url.PathEscape(mac)+"/events")
		return d, err
	}, func(o *output, d ServerDetail) error {
		s := d.Server
		fmt.Fprintf(env.Stdout, "server %s  id %s  pool %s  power %s  state %s\n", s.MAC, s.ID, s.Pool, s.Power, s.State)
		if s.LeaseID != "" {
			fmt.Fprintf(env.Stdout, "lease %s  phase %s\n", s.LeaseID, s.Phase)
		}
		if s.Note != "" {
			fmt.Fprintf(env.Stdout, "maintenance: %s\n", s.Note)
		}
		if s.LastError != "" {
			fmt.Fprintf(env.Stdout, "last error (%s): %s\n", s.LastErrorAt.Format(time.RFC3339), s.LastError)
		}
		fmt.Fprintln(env.Stdout)
		return printEvents(env, o, lastN(d.Events, *n))
	})
}

// getEvents is a history from the admin socket, [] (never null) when
// there is none.
func getEvents(ctx context.Context, c *api.Client, path string) ([]lender.Event, error) {
	ev := []lender.Event{}
	if err := c.Call(ctx, "GET", path, nil, &ev); err != nil {
		return nil, err
	}
	if ev == nil {
		ev = []lender.Event{}
	}
	return ev, nil
}

func lastN(ev []lender.Event, n int) []lender.Event {
	if n >= 0 && len(ev) > n {
		return ev[len(ev)-n:]
	}
	return ev
}

var eventColumns = []column{{name: "TIME"}, {name: "KIND"}, {name: "SOURCE", wide: true}, {name: "MAC"}, {name: "LEASE"}, {name: "WHAT"}, {name: "ERROR"}}

func printEvents(env *Env, o *output, ev []lender.Event) error {
	var rows [][]string
	for _, e := range ev {
		rows = append(rows, []string{e.At.Format(time.RFC3339), e.Kind, e.Source, e.MAC, e.Lease, e.What, e.Error})
	}
	return o.table(env, eventColumns, rows)
}

func lenderServerEvents(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	return eventsCmd(env, fs, "MAC", func(mac string) string { return "/admin/servers/" + url.PathEscape(mac) + "/events" })
}

func lenderLeaseEvents(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	return eventsCmd(env, fs, "lease ID", func(id string) string { return "/admin/leases/" + url.PathEscape(id) + "/events" })
}

func eventsCmd(env *Env, fs *flag.FlagSet, what string, path func(string) string) func(context.Context, []string) error {
	return adminOne(env, fs, lenderAdmin(env, fs), what, func(ctx context.Context, c *api.Client, arg string) ([]lender.Event, error) {
		return getEvents(ctx, c, path(arg))
	}, func(o *output, ev []lender.Event) error { return printEvents(env, o, ev) })
}

func lenderServerMAC(action string) func(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	return func(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
		if action == "remove" {
			return adminOne(env, fs, lenderAdmin(env, fs), "MAC", func(ctx context.Context, c *api.Client, mac string) (map[string]string, error) {
				return map[string]string{"mac": mac, "removed": "true"}, c.Call(ctx, "DELETE", "/admin/servers/"+url.PathEscape(mac), nil, nil)
			}, func(_ *output, r map[string]string) error {
				fmt.Fprintf(env.Stdout, "removed %s\n", r["mac"])
				return nil
			})
		}
		return adminOne(env, fs, lenderAdmin(env, fs), "MAC", func(ctx context.Context, c *api.Client, mac string) (api.LeaseServer, error) {
			var s api.LeaseServer
			err := c.Call(ctx, "POST", "/admin/servers/"+url.PathEscape(mac)+"/clear", nil, &s)
			return s, err
		}, func(_ *output, s api.LeaseServer) error {
			fmt.Fprintf(env.Stdout, "cleared %s (%s): phase %s\n", s.MAC, s.ID, s.Phase)
			return nil
		})
	}
}

func lenderServerPower(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	admin := lenderAdmin(env, fs)
	o := outputFlags(fs)
	return func(ctx context.Context, pos []string) error {
		c, err := admin()
		if err != nil {
			return err
		}
		if len(pos) != 2 {
			return usagef("want MAC and one of on, off, status, check")
		}
		switch pos[1] {
		case lender.PowerOn, lender.PowerOff, lender.PowerStatus, lender.PowerCheck:
		default:
			return usagef("%q: want on, off, status or check", pos[1])
		}
		if err := o.check(); err != nil {
			return err
		}
		var r lender.PowerResult
		if err := c.Call(ctx, "POST", "/admin/servers/"+url.PathEscape(pos[0])+"/power", map[string]string{"action": pos[1]}, &r); err != nil {
			return err
		}
		return printPower(env, o, []lender.PowerResult{r}, r)
	}
}

// printPower prints power results; any failure is exit status 1.
func printPower(env *Env, o *output, rs []lender.PowerResult, v any) error {
	if ok, err := o.json(env, v); !ok {
		var rows [][]string
		for _, r := range rs {
			res := "ok"
			if !r.OK {
				res = "failed"
			}
			rows = append(rows, []string{r.MAC, r.Driver, r.Action, res, r.State, r.Error})
		}
		err = o.table(env, []column{{name: "MAC"}, {name: "DRIVER"}, {name: "ACTION"}, {name: "RESULT"}, {name: "STATE"}, {name: "ERROR"}}, rows)
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	for _, r := range rs {
		if !r.OK {
			return &ExitError{Code: ExitFailed}
		}
	}
	return nil
}

func lenderServerValidate(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	admin := lenderAdmin(env, fs)
	o := outputFlags(fs)
	return func(ctx context.Context, pos []string) error {
		c, err := o.connect(admin)
		if err != nil {
			return err
		}
		rs := []lender.PowerResult{}
		if err := c.Call(ctx, "POST", "/admin/validate", map[string][]string{"macs": pos}, &rs); err != nil {
			return err
		}
		return printPower(env, o, rs, rs)
	}
}

func lenderServerMaintenance(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	admin := lenderAdmin(env, fs)
	note := fs.String("note", "", "why (shown in server list and show)")
	o := outputFlags(fs)
	return func(ctx context.Context, pos []string) error {
		c, err := admin()
		if err != nil {
			return err
		}
		if len(pos) != 2 || (pos[1] != "on" && pos[1] != "off") {
			return usagef("want MAC and on or off")
		}
		if err := o.check(); err != nil {
			return err
		}
		var s lender.Server
		req := map[string]any{"on": pos[1] == "on", "note": *note}
		if err := c.Call(ctx, "POST", "/admin/servers/"+url.PathEscape(pos[0])+"/maintenance", req, &s); err != nil {
			return err
		}
		if ok, err := o.json(env, s); ok {
			return err
		}
		fmt.Fprintf(env.Stdout, "%s is %s\n", s.MAC, s.State)
		return nil
	}
}

func lenderBootCmd(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	admin := lenderAdmin(env, fs)
	return func(ctx context.Context, pos []string) error {
		c, err := admin()
		if err != nil {
			return err
		}
		mac, err := oneArg(pos, "MAC")
		if err != nil {
			return err
		}
		var b lender.Boot
		if err := c.Call(ctx, "GET", "/admin/boot/"+url.PathEscape(mac), nil, &b); err != nil {
			return err
		}
		return json.NewEncoder(env.Stdout).Encode(b)
	}
}

var leaseColumns = []column{{name: "LEASE"}, {name: "BORROWER"}, {name: "STATE"}, {name: "EXPIRES"}, {name: "SERVER", wide: true},
	{name: "MAC"}, {name: "PHASE"}, {name: "SPKI_SHA256", wide: true}, {name: "ERROR"}}

func leaseRows(ls []api.Lease) [][]string {
	var rows [][]string
	for _, l := range ls {
		for _, s := range l.Servers {
			why := s.Error
			if why == "" {
				why = s.Conflict // stored before members had an error
			}
			rows = append(rows, []string{l.ID, l.Borrower, l.State, l.Expires.Format(time.RFC3339), s.ID, s.MAC, s.Phase, s.SPKIPin, why})
		}
	}
	return rows
}

func lenderLeaseList(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	return adminList(env, fs, lenderAdmin(env, fs), "/admin/leases", leaseColumns, leaseRows)
}

// LenderLeaseDetail is the lender's `lease show -o json`.
type LenderLeaseDetail struct {
	api.Lease
	Events []lender.Event `json:"events"`
}

func lenderLeaseShow(env *Env, fs *flag.FlagSet) func(context.Context, []string) error {
	n := fs.Int("events", 20, "how many of the latest events the table shows (json: all)")
	return adminOne(env, fs, lenderAdmin(env, fs), "lease ID", func(ctx context.Context, c *api.Client, id string) (LenderLeaseDetail, error) {
		var d LenderLeaseDetail
		if err := c.Call(ctx, "GET", api.PathLeases+"/"+url.PathEscape(id), nil, &d.Lease); err != nil {
			return d, err
		}
		var err error
		d.Events, err = getEvents(ctx, c, "/admin/leases/"+url.PathEscape(id)+"/events")
		return d, err
	}, func(o *output, d LenderLeaseDetail) error {
		l := d.Lease
		fmt.Fprintf(env.Stdout, "lease %s  borrower %s  state %s  created %s  expires %s\n\n", l.ID, l.Borrower, l.State,
			l.Created.Format(time.RFC3339), l.Expires.Format(time.RFC3339))
		if err := o.table(env, leaseColumns, leaseRows([]api.Lease{l})); err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout)
		return printEvents(env, o, lastN(d.Events, *n))
	})
}

package borrower

import (
	"context"
	"net/http"
	"sort"
	"time"

	"ferry/api"
	"ferry/internal/statuspage"
)

// handleStatusPage serves the status listener's GET /: a read-only HTML
// page of the leases, each lent server (its root, tunnel address, phase)
// with its phase timeline, and the last errors. No script, no form.
func (m *Manager) handleStatusPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	ls, err := m.Leases(ctx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	roots := map[string]string{}
	for _, l := range ls {
		if l.State != StateActive {
			continue
		}
		if rs, err := m.rootStates(ctx, l); err == nil {
			for _, r := range rs {
				roots[r.Root] = r.Text()
			}
		}
	}
	if err := statuspage.Write(w, borrowerStatusTemplate, newStatusPage(ls, roots, time.Now())); err != nil {
		m.log.Warn("status page", "err", err)
	}
}

type statusPage struct {
	Now    time.Time
	Leases []statusLease
	Errors []statuspage.Error
}

type statusLease struct {
	Lease
	Servers []statusServer
}

type statusServer struct {
	api.LeaseServer
	Root, Addr string
	Timeline   []statusPhase
}

type statusPhase struct {
	api.PhaseReport
	Took time.Duration
}

// newStatusPage is the page of leases ls; roots is the state of each
// root being prepared or ready, by name ("copying 37%").
func newStatusPage(ls []Lease, roots map[string]string, now time.Time) statusPage {
	p := statusPage{Now: now.UTC()}
	sort.SliceStable(ls, func(i, j int) bool { return ls[i].Created.After(ls[j].Created) })
	for _, l := range ls {
		sl := statusLease{Lease: l}
		if l.Error != "" {
			p.Errors = append(p.Errors, statuspage.Error{When: l.Created, Where: "lease " + l.ID, Error: l.Error})
		}
		for i, s := range l.Lender.Servers {
			ss := statusServer{LeaseServer: s}
			if i < len(l.Roots) {
				ss.Root = l.Roots[i]
				if st := roots[l.Roots[i]]; st != "" {
					ss.Root += " (" + st + ")"
				}
			}
			if i < len(l.Addrs) {
				ss.Addr = l.Addrs[i].String()
			}
			for _, ph := range s.Phases {
				ss.Timeline = append(ss.Timeline, statusPhase{PhaseReport: ph, Took: ph.End.Sub(ph.Start).Round(time.Millisecond)})
			}
			p.Errors = append(p.Errors, statuspage.ServerErrors(l.ID, s)...)
			sl.Servers = append(sl.Servers, ss)
		}
		p.Leases = append(p.Leases, sl)
	}
	p.Errors = statuspage.Newest(p.Errors)
	return p
}

var borrowerStatusTemplate = statuspage.New("borrower", `<h2>Leases ({{len .Leases}})</h2>
{{range .Leases}}<section class="lease" id="lease-{{.ID}}">
<h3>lease {{.ID}} <small>{{.State}}, image {{.Image}}, {{.Count}} server(s), created {{ts .Created}}{{if .Lender.ID}}, lender lease {{.Lender.ID}} ends {{ts .Lender.Expires}}{{end}}</small></h3>
{{if .Error}}<p class="err">{{.Error}}</p>{{end}}
<table><tr><th>server</th><th>MAC</th><th>phase</th><th>tunnel address</th><th>root</th><th>error</th></tr>
{{range .Servers}}<tr><td>{{.ID}}</td><td>{{.MAC}}</td><td>{{.Phase}}</td><td>{{.Addr}}</td><td><small>{{.Root}}</small></td><td class="err">{{.Error}}</td></tr>
{{else}}<tr><td colspan="6">no servers yet</td></tr>{{end}}</table>
{{range .Servers}}{{if .Timeline}}<h4>timeline of {{.MAC}}</h4>
<table class="timeline"><tr><th>phase</th><th>started</th><th>took</th><th>bytes</th><th>result</th></tr>
{{range .Timeline}}<tr><td>{{.Phase}}</td><td>{{ts .Start}}</td><td>{{.Took}}</td><td>{{.Bytes}}</td>{{if .Error}}<td class="err">{{.Error}}</td>{{else}}<td class="ok">ok</td>{{end}}</tr>
{{end}}</table>{{end}}{{end}}
</section>
{{else}}<p>no leases</p>{{end}}
`)

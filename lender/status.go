package lender

import (
	"context"
	"net/http"
	"sort"
	"time"

	"ferry/api"
	"ferry/internal/promreg"
	"ferry/internal/statuspage"
)

// DefaultStatusListen is where the lender serves /metrics and its status
// page when status_listen is not set: loopback only, never the PXE side.
const DefaultStatusListen = "127.0.0.1:9731"

// StatusHandler serves the local status listener: GET /metrics
// (Prometheus) and GET / (a read-only HTML page of the servers, the
// leases, each server's phase timeline and the last errors). Nothing here
// changes state; nothing here is served to agents or borrowers.
func (m *Manager) StatusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promreg.Handler(m.metrics.reg))
	mux.HandleFunc("GET /{$}", m.handleStatusPage)
	return mux
}

// statusPage is what the template shows.
type statusPage struct {
	Now     time.Time
	Servers []Server
	Leases  []leaseView
	Errors  []statuspage.Error
}

type leaseView struct {
	api.Lease
	Members []memberView
}

type memberView struct {
	api.LeaseServer
	Timeline []phaseView
}

type phaseView struct {
	api.PhaseReport
	Took   time.Duration
	Offset time.Duration // since the lease was created
}

func (m *Manager) handleStatusPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	p, err := m.statusPage(ctx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := statuspage.Write(w, statusTemplate, p); err != nil {
		m.log.Warn("status page", "err", err)
	}
}

func (m *Manager) statusPage(ctx context.Context) (statusPage, error) {
	p := statusPage{Now: m.now().UTC()}
	var err error
	if p.Servers, err = m.Servers(ctx); err != nil {
		return p, err
	}
	ls, err := m.Leases(ctx)
	if err != nil {
		return p, err
	}
	for _, s := range p.Servers {
		if s.LastError != "" {
			p.Errors = append(p.Errors, statuspage.Error{When: s.LastErrorAt, Where: "server " + s.MAC, Error: s.LastError})
		}
	}
	// Newest lease first; active ones before returned ones.
	sort.SliceStable(ls, func(i, j int) bool {
		if (ls[i].State == api.LeaseActive) != (ls[j].State == api.LeaseActive) {
			return ls[i].State == api.LeaseActive
		}
		return ls[i].Created.After(ls[j].Created)
	})
	for _, l := range ls {
		lv := leaseView{Lease: l}
		for _, s := range l.Servers {
			mv := memberView{LeaseServer: s}
			for _, ph := range s.Phases {
				mv.Timeline = append(mv.Timeline, phaseView{PhaseReport: ph, Took: ph.End.Sub(ph.Start).Round(time.Millisecond),
					Offset: ph.Start.Sub(l.Created).Round(time.Second)})
			}
			p.Errors = append(p.Errors, statuspage.ServerErrors(l.ID, s)...)
			lv.Members = append(lv.Members, mv)
		}
		p.Leases = append(p.Leases, lv)
	}
	p.Errors = statuspage.Newest(p.Errors)
	return p, nil
}

var statusTemplate = statuspage.New("lender", `<h2>Servers ({{len .Servers}})</h2>
<table id="servers"><tr><th>MAC</th><th>pool</th><th>state</th><th>lease</th><th>phase</th><th>power</th><th>last error</th></tr>
{{range .Servers}}<tr><td>{{.MAC}}</td><td>{{.Pool}}</td><td>{{.State}}</td><td>{{.LeaseID}}</td><td>{{.Phase}}</td><td>{{.Power}}</td><td class="err">{{.LastError}}</td></tr>
{{else}}<tr><td colspan="7">no servers: ferry lender server add</td></tr>{{end}}</table>

<h2>Leases ({{len .Leases}})</h2>
{{range .Leases}}<section class="lease" id="lease-{{.ID}}">
<h3>lease {{.ID}} <small>{{.State}}, borrower {{.Borrower}}, created {{ts .Created}}, ends {{ts .Expires}}{{if not .Returned.IsZero}}, returned {{ts .Returned}}{{end}}</small></h3>
<table><tr><th>server</th><th>MAC</th><th>phase</th><th>key pin</th><th>error</th></tr>
{{range .Members}}<tr><td>{{.ID}}</td><td>{{.MAC}}</td><td>{{.Phase}}</td><td><small>{{.SPKIPin}}</small></td><td class="err">{{.Error}}</td></tr>
{{end}}</table>
{{range .Members}}{{if .Timeline}}<h4>timeline of {{.MAC}}</h4>
<table class="timeline"><tr><th>phase</th><th>started</th><th>+since lease</th><th>took</th><th>bytes</th><th>result</th></tr>
{{range .Timeline}}<tr><td>{{.Phase}}</td><td>{{ts .Start}}</td><td>{{.Offset}}</td><td>{{.Took}}</td><td>{{.Bytes}}</td>{{if .Error}}<td class="err">{{.Error}}</td>{{else}}<td class="ok">ok</td>{{end}}</tr>
{{end}}</table>{{end}}{{end}}
</section>
{{else}}<p>no leases</p>{{end}}
`)

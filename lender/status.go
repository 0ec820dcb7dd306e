package lender

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"time"

	"ferry/api"
	"ferry/internal/promreg"
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
	Errors  []lastError
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

type lastError struct {
	When  time.Time
	Where string
	Error string
}

func (m *Manager) handleStatusPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	p, err := m.statusPage(ctx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The page loads nothing and runs nothing.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	if err := statusTemplate.Execute(w, p); err != nil {
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
			p.Errors = append(p.Errors, lastError{When: s.LastErrorAt, Where: "server " + s.MAC, Error: s.LastError})
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
				if ph.Error != "" {
					p.Errors = append(p.Errors, lastError{When: ph.End, Where: fmt.Sprintf("lease %s server %s phase %s", l.ID, s.MAC, ph.Phase), Error: ph.Error})
				}
			}
			if s.Error != "" {
				p.Errors = append(p.Errors, lastError{Where: fmt.Sprintf("lease %s server %s", l.ID, s.MAC), Error: s.Error})
			}
			lv.Members = append(lv.Members, mv)
		}
		p.Leases = append(p.Leases, lv)
	}
	sort.SliceStable(p.Errors, func(i, j int) bool { return p.Errors[i].When.After(p.Errors[j].When) })
	if len(p.Errors) > 50 {
		p.Errors = p.Errors[:50]
	}
	return p, nil
}

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ferry lender status</title>
<style>
body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}th{background:#eee}
.err{color:#a00}.ok{color:#070}small{color:#666}
</style></head><body>
<h1>ferry lender</h1>
<p><small>read-only, as of {{ts .Now}}; metrics at <a href="/metrics">/metrics</a></small></p>

<h2>Servers ({{len .Servers}})</h2>
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

<h2>Last errors</h2>
<table id="errors"><tr><th>when</th><th>where</th><th>error</th></tr>
{{range .Errors}}<tr><td>{{ts .When}}</td><td>{{.Where}}</td><td class="err">{{.Error}}</td></tr>
{{else}}<tr><td colspan="3">none</td></tr>{{end}}</table>
</body></html>
`))

// Package statuspage is what the lender's and the borrower's read-only
// HTML status pages share: the page's head and style, the "Last errors"
// table, the headers of a page that loads and runs nothing, and the
// timestamp format. Each server keeps only its own tables.
package statuspage

import (
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"time"

	"ferry/api"
)

// MaxErrors is how many of the latest errors a page lists.
const MaxErrors = 50

// Error is one row of the "Last errors" table.
type Error struct {
	When         time.Time
	Where, Error string
}

// Newest sorts errs newest first and keeps the latest MaxErrors.
func Newest(errs []Error) []Error {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].When.After(errs[j].When) })
	if len(errs) > MaxErrors {
		errs = errs[:MaxErrors]
	}
	return errs
}

// ServerErrors are the "Last errors" rows of one server of lease: each
// failed phase's, then the server's own.
func ServerErrors(lease string, s api.LeaseServer) []Error {
	var errs []Error
	for _, ph := range s.Phases {
		if ph.Error != "" {
			errs = append(errs, Error{When: ph.End, Where: fmt.Sprintf("lease %s server %s phase %s", lease, s.MAC, ph.Phase), Error: ph.Error})
		}
	}
	if s.Error != "" {
		errs = append(errs, Error{Where: fmt.Sprintf("lease %s server %s", lease, s.MAC), Error: s.Error})
	}
	return errs
}

// Time formats t for a page: UTC to the second, "-" for the zero time.
func Time(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// New parses body between the shared head (title "ferry NAME status",
// the as-of line from .Now) and the shared "Last errors" table (from
// .Errors, a []Error). name is a constant of the caller, never input.
// body may call ts (Time).
func New(name, body string) *template.Template {
	return template.Must(template.New(name).Funcs(template.FuncMap{"ts": Time}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ferry ` + name + ` status</title>
<style>
body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}th{background:#eee}
.err{color:#a00}.ok{color:#070}small{color:#666}
</style></head><body>
<h1>ferry ` + name + `</h1>
<p><small>read-only, as of {{ts .Now}}; metrics at <a href="/metrics">/metrics</a></small></p>
` + body + `
<h2>Last errors</h2>
<table id="errors"><tr><th>when</th><th>where</th><th>error</th></tr>
{{range .Errors}}<tr><td>{{ts .When}}</td><td>{{.Where}}</td><td class="err">{{.Error}}</td></tr>
{{else}}<tr><td colspan="3">none</td></tr>{{end}}</table>
</body></html>
`))
}

// Write sends t executed on data as a page that is never cached and, by
// its Content-Security-Policy, loads and runs nothing.
func Write(w http.ResponseWriter, t *template.Template, data any) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	return t.Execute(w, data)
}

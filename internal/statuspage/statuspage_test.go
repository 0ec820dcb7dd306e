package statuspage

import (
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"ferry/api"
)

func TestPageEscapesErrorsAndForbidsScripts(t *testing.T) {
	tp := New("lender", `<h2>Body</h2>`)
	w := httptest.NewRecorder()
	errs := []Error{{When: time.Unix(100, 0), Where: "server <b>", Error: `<script>alert(1)</script>`}}
	if err := Write(w, tp, struct {
		Now    time.Time
		Errors []Error
	}{time.Unix(200, 0), errs}); err != nil {
		t.Fatal(err)
	}
	body := w.Body.String()
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("error text not escaped:\n%s", body)
	}
	for _, want := range []string{"<title>ferry lender status</title>", "<h2>Body</h2>", "1970-01-01 00:03:20Z"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
}

func TestNewestKeepsTheLatest(t *testing.T) {
	var errs []Error
	for i := range MaxErrors + 10 {
		errs = append(errs, Error{When: time.Unix(int64(i), 0)})
	}
	got := Newest(errs)
	if len(got) != MaxErrors || got[0].When.Unix() != MaxErrors+9 || got[MaxErrors-1].When.Unix() != 10 {
		t.Fatalf("kept %d, first %v last %v", len(got), got[0].When.Unix(), got[len(got)-1].When.Unix())
	}
}

func TestServerErrorsAreEachFailedPhaseThenTheServers(t *testing.T) {
	end := time.Unix(300, 0)
	s := api.LeaseServer{MAC: "52:54:00:00:00:01", Error: "boot-timeout: no enrollment", Phases: []api.PhaseReport{
		{Phase: "fetch-b", End: time.Unix(200, 0)},
		{Phase: "nfs-mount", End: end, Error: "mount refused"},
	}}
	want := []Error{
		{When: end, Where: "lease L1 server 52:54:00:00:00:01 phase nfs-mount", Error: "mount refused"},
		{Where: "lease L1 server 52:54:00:00:00:01", Error: "boot-timeout: no enrollment"},
	}
	if got := ServerErrors("L1", s); !reflect.DeepEqual(got, want) {
		t.Errorf("ServerErrors:\n%+v\nwant\n%+v", got, want)
	}
	if got := ServerErrors("L1", api.LeaseServer{MAC: "m", Phases: []api.PhaseReport{{Phase: "kexec"}}}); got != nil {
		t.Errorf("a server without errors has rows %+v", got)
	}
}

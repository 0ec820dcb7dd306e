package statuspage

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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

package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIfNoneMatchNamesTheTag(t *testing.T) {
	tag := `"abc"`
	for _, c := range []struct {
		header string
		want   bool
	}{
		{`"abc"`, true}, {`W/"abc"`, true}, {`"x", "abc"`, true}, {`*`, true},
		{``, false}, {`"abd"`, false}, {`abc`, false}, {`"x","y"`, false},
	} {
		if got := noneMatch(c.header, tag); got != c.want {
			t.Errorf("If-None-Match %q against %s = %v, want %v", c.header, tag, got, c.want)
		}
	}
}

// A server that does not tag its answers (an older lender) answers a
// conditional GET in full: the client takes it as changed.
func TestGetIfChangedFromAServerWithoutTags(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, Lease{ID: "L1"})
	}))
	defer srv.Close()
	c := &Client{Base: srv.URL, HTTP: srv.Client()}
	tag, _ := ETag(Lease{ID: "L1"})
	var got Lease
	if changed, err := c.GetIfChanged(context.Background(), "/l", tag, &got); err != nil || !changed || got.ID != "L1" {
		t.Fatalf("GetIfChanged from a server without tags = %v, %v, %q; want the lease", changed, err, got.ID)
	}
}

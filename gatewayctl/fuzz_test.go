package gatewayctl

import (
	"strings"
	"testing"
)

// FuzzSnippetCannotBeInjected: whatever identity a conn carries, if it is
// accepted the rendered snippet has the same shape (one setting a line,
// the same number of lines and sections) as for a plain identity.
func FuzzSnippetCannotBeInjected(f *testing.F) {
	f.Add("CN=srv, O=ferry")
	f.Add("x\n}\nconnections { evil {")
	f.Add(`a" # b`)
	f.Add("%any")
	c := testConn(f, "l", "s")
	plain := render(c)
	f.Fuzz(func(t *testing.T, id string) {
		c := c
		c.RemoteID = id
		if c.validate() != nil {
			return
		}
		got := render(c)
		if strings.Count(got, "\n") != strings.Count(plain, "\n") || strings.Count(got, "{") != strings.Count(plain, "{") || strings.Count(got, "}") != strings.Count(plain, "}") {
			t.Fatalf("id %q changed the snippet's shape:\n%s", id, got)
		}
	})
}

func render(c Conn) string {
	var b strings.Builder
	c.tree("/ca.pem", "/pub.pem").writeConf(&b, 0)
	return b.String()
}

package agent

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestPhasesMatchContract: the four phase lists docs/CONTRACT.md states
// are the ones the agent runs (Phases reads them off RunA and RunB's
// steps), so the document and the lab's checks cannot drift apart.
func TestPhasesMatchContract(t *testing.T) {
	b, err := os.ReadFile("../docs/CONTRACT.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		line    string
		image   string
		managed bool
	}{{"Phases in A", "A", false}, {"Phases in B", "B", false},
		{"Managed phases in A", "A", true}, {"Managed phases in B", "B", true}} {
		m := regexp.MustCompile(`(?m)^` + c.line + ": `([^`]*)`").FindSubmatch(b)
		if m == nil {
			t.Errorf("docs/CONTRACT.md has no %q line", c.line)
			continue
		}
		if got, want := strings.Join(Phases(c.image, c.managed), " "), string(m[1]); got != want {
			t.Errorf("%s: the agent runs %q, docs/CONTRACT.md says %q", c.line, got, want)
		}
	}
	if p := Phases("C", false); p != nil {
		t.Errorf("Phases(C) = %q, want none", p)
	}
}

package authz

import (
	"bytes"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"pin":"` + pin(1) + `","lease":"a","expires":"2030-01-01T00:00:00Z"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, e := range es {
			if e.validate() != nil {
				t.Fatalf("Parse returned invalid entry %+v", e)
			}
		}
	})
}

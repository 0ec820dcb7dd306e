package configfile

import (
	"strings"
	"testing"
	"time"
)

type inner struct {
	Name string `json:"name"`
	CA   string `json:"ca"`
}

type embedded struct {
	DPD int `json:"dpd_seconds"`
}

type dur time.Duration

func (d *dur) UnmarshalJSON(b []byte) error {
	v, err := time.ParseDuration(strings.Trim(string(b), `"`))
	*d = dur(v)
	return err
}

type sample struct {
	Dir   string   `json:"dir"`
	Port  int      `json:"port"`
	On    bool     `json:"on"`
	List  []inner  `json:"list"`
	Net   *inner   `json:"net,omitempty"`
	TTL   dur      `json:"ttl"`
	Addrs []string `json:"addrs"`
	embedded
}

// Every problem of a file is reported by one decode, each with its path.
func TestDecodeReportsEveryProblemAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		json string
		want []string // each must be one problem's text, in order
	}{
		{"clean", `{"dir": "/d", "port": 1, "on": true, "list": [{"name": "a"}], "net": {"ca": "x"}, "ttl": "1m", "addrs": ["a"], "dpd_seconds": 3}`, nil},
		{"comments anywhere", `{"//": "top", "net": {"//": ["a", "b"], "name": "n"}, "list": [{"//": "x"}]}`, nil},
		{"three at once", `{"dri": "/d", "port": "80", "list": [{"name": "a"}, {"nmae": "b"}]}`, []string{
			`dri: unknown key (did you mean "dir"?)`,
			`port "80": want a whole number`,
			`list[1].nmae: unknown key (did you mean "name"?)`}},
		{"twice", `{"dir": "/a", "dir": "/b"}`, []string{`dir: given twice: JSON would keep only the last`}},
		{"nested pointer", `{"net": {"ca": 5, "zz": 1}}`, []string{`net.ca 5: want a string`, `net.zz: unknown key`}},
		{"custom type", `{"ttl": "ten minutes", "on": "yes"}`, []string{`ttl "ten minutes": time: invalid duration "ten minutes"`, `on "yes": want true or false`}},
		{"embedded", `{"dpd_second": 1}`, []string{`dpd_second: unknown key (did you mean "dpd_seconds"?)`}},
		{"not an object", `[1]`, []string{`[1]: want an object {...}`}},
		{"list of wrong", `{"list": {"name": "a"}}`, []string{`list {"name": "a"}: want a list (an object {...})`}},
		{"bad comment", `{"//": 5}`, []string{`// 5: a comment: want a string or a list of strings`}},
		{"syntax", "{\n  \"dir\": \"/d\",\n}", []string{"not JSON: line 3 column 1: invalid character '}' looking for beginning of object key string"}},
		{"two values", `{} {}`, []string{"not JSON: line 1 column 4: invalid character '{' after top-level value"}},
	} {
		var s sample
		r := &Report{Name: "test"}
		Decode(r, []byte(tc.json), &s)
		var got []string
		for _, p := range r.Problems {
			got = append(got, p.String())
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %d problems %q, want %q", tc.name, len(got), got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: problem %d = %q, want %q", tc.name, i, got[i], tc.want[i])
			}
		}
	}
}

// Fields that decode keep their values beside a bad one.
func TestDecodeKeepsGoodFields(t *testing.T) {
	var s sample
	r := &Report{Name: "x"}
	Decode(r, []byte(`{"dir": "/d", "port": "bad", "net": {"name": "n"}, "dpd_seconds": 7}`), &s)
	if s.Dir != "/d" || s.Net == nil || s.Net.Name != "n" || s.DPD != 7 {
		t.Fatalf("decoded %+v", s)
	}
	err := r.Err()
	if err == nil || err.Error() != `x: port "bad": want a whole number` {
		t.Fatalf("err = %v", err)
	}
}

func TestErrorListsEachProblemOnItsOwnLine(t *testing.T) {
	r := &Report{Name: "lender config f.json"}
	r.Errorf("a", "x", "want y")
	r.Warnf("b", nil, "soon")
	r.Errorf("c", 3, "want 4")
	want := "lender config f.json: 2 problems:\n  a \"x\": want y\n  c 3: want 4"
	if got := r.Err().Error(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if w := r.Warnings(); len(w) != 1 || w[0].String() != "warning: b: soon" {
		t.Fatalf("warnings %v", w)
	}
}

// A note neither refuses the file nor counts as a warning.
func TestInfoIsNeitherErrorNorWarning(t *testing.T) {
	r := &Report{Name: "gateway config g.json"}
	r.Infof("crl", "/x.crl", "not there yet")
	if r.Failed() || r.Err() != nil || len(r.Warnings()) != 0 {
		t.Fatalf("a note failed the file or warned: %v %v", r.Err(), r.Warnings())
	}
	if n := r.Infos(); len(n) != 1 || n[0].String() != `info: crl "/x.crl": not there yet` {
		t.Fatalf("infos %v", n)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"dir": "/d", "list": [{"name": "a"}], "net": {"ca": "x"}}`))
	f.Add([]byte(`{"//": ["c"], "ttl": "1m", "dpd_seconds": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s sample
		r := &Report{Name: "fuzz"}
		Decode(r, data, &s)
		_ = r.Err()
	})
}

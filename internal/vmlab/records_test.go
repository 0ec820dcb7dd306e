package vmlab

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseRecordRefusesWhatTheGuestNeverWrites(t *testing.T) {
	if r, err := ParseRecord("17 123.45"); err != nil || r.Seq != 17 || r.Uptime != 123.45 {
		t.Fatalf("ParseRecord(17 123.45) = %+v, %v", r, err)
	}
	for _, bad := range []string{"", "17", "x 1.0", "0 1.0", "-3 1.0", "3 up", "3 1.0 extra", strings.Repeat("9", 300) + " 1"} {
		if _, err := ParseRecord(bad); err == nil {
			t.Errorf("ParseRecord(%.20q) took it", bad)
		}
	}
}

func TestSequenceNamesLostAndDuplicatedRecords(t *testing.T) {
	recs := func(seqs ...int) []Record {
		var r []Record
		for _, s := range seqs {
			r = append(r, Record{Seq: s})
		}
		return r
	}
	for _, c := range []struct {
		seqs          []int
		missing, dups []int
	}{
		{[]int{1, 2, 3, 4}, nil, nil},
		{[]int{1, 2, 4, 5}, []int{3}, nil},
		{[]int{2, 3}, []int{1}, nil},
		{[]int{1, 2, 2, 3, 3}, nil, []int{2, 3}},
		{[]int{1, 3, 2, 4}, nil, nil}, // reordered, nothing lost
		{[]int{1, 5, 5}, []int{2, 3, 4}, []int{5}},
	} {
		m, d := Sequence(recs(c.seqs...))
		if !reflect.DeepEqual(m, c.missing) || !reflect.DeepEqual(d, c.dups) {
			t.Errorf("Sequence(%v) = missing %v dup %v, want %v %v", c.seqs, m, d, c.missing, c.dups)
		}
	}
}

func TestFrozenMeasuresTheStallAcrossAFault(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	var recs []Record
	n := 0
	add := func(from, to float64) {
		for s := from; s <= to; s += 0.5 {
			n++
			recs = append(recs, Record{Seq: n, Seen: at(s)})
		}
	}
	add(0, 8)   // before; a stall of its own from 8 s
	add(43, 60) // the fault is 10-40 s; the root resumes at 43 s
	frozen, rec, ok := Frozen(recs, at(10), at(40), 10*time.Second)
	if !ok || frozen != 33*time.Second || rec != 3*time.Second {
		t.Fatalf("Frozen = %s, recovered after %s, %v; want 33s (from the fault's start), 3s, true", frozen, rec, ok)
	}
	if g := LongestGap(recs, at(0), at(8)); g != 500*time.Millisecond {
		t.Fatalf("LongestGap before the fault = %s, want 500ms", g)
	}
	// A second stall within the settle time counts, one after it does not.
	recs2 := append(append([]Record(nil), recs...), Record{Seq: n + 1, Seen: at(100)})
	if f, _, _ := Frozen(recs2, at(10), at(40), 10*time.Second); f != 33*time.Second {
		t.Fatalf("a stall 60 s after the fault counted: %s", f)
	}
	if _, _, ok := Frozen(recs[:17], at(10), at(40), time.Second); ok {
		t.Fatal("no record after the fault, yet ok")
	}
}

func TestRecorderReadsOnlyWholeLinesAndStampsThem(t *testing.T) {
	p := filepath.Join(t.TempDir(), "records")
	r := &Recorder{Path: func() string { return p }}
	r.read(time.Unix(1, 0)) // no file yet
	os.WriteFile(p, []byte("1 0.5\n2 1.0\n3 1."), 0o600)
	r.read(time.Unix(2, 0))
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("5\nbogus\n4 2.0\n")
	f.Close()
	r.read(time.Unix(3, 0))
	got := r.Records()
	want := []Record{{1, 0.5, time.Unix(2, 0)}, {2, 1.0, time.Unix(2, 0)}, {3, 1.5, time.Unix(3, 0)}, {4, 2.0, time.Unix(3, 0)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records %+v, want %+v", got, want)
	}
	if len(r.Bad()) != 1 {
		t.Fatalf("bad lines %q, want the one", r.Bad())
	}
}

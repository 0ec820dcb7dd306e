package vmlab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Record is one line "SEQ UPTIME" the guest root's workload appended and
// fsynced (scripts/root-init.sh), with the host time it was first seen.
type Record struct {
	Seq    int
	Uptime float64 // the guest's /proc/uptime when it wrote the line
	Seen   time.Time
}

// maxRecordLine bounds one line of the records file (the guest writes
// about 20 bytes).
const maxRecordLine = 256

// ParseRecord reads one line of the records file.
func ParseRecord(line string) (Record, error) {
	f := strings.Fields(line)
	if len(line) > maxRecordLine || len(f) != 2 {
		return Record{}, fmt.Errorf("record %.40q: want \"SEQ UPTIME\"", line)
	}
	seq, err := strconv.Atoi(f[0])
	if err != nil || seq < 1 {
		return Record{}, fmt.Errorf("record %.40q: sequence %q is not a positive integer", line, f[0])
	}
	up, err := strconv.ParseFloat(f[1], 64)
	if err != nil || up < 0 {
		return Record{}, fmt.Errorf("record %.40q: uptime %q is not a number of seconds", line, f[1])
	}
	return Record{Seq: seq, Uptime: up}, nil
}

// Recorder follows a records file as it grows, stamping each complete
// line with the host time it was first seen (polled every Poll).
type Recorder struct {
	Path func() string // where the file is (found once the root exists)
	Poll time.Duration

	mu   sync.Mutex
	recs []Record
	bad  []string
	off  int64
}

// Run polls until ctx ends.
func (r *Recorder) Run(ctx context.Context) {
	poll := r.Poll
	if poll == 0 {
		poll = 100 * time.Millisecond
	}
	for {
		r.read(time.Now())
		select {
		case <-ctx.Done():
			r.read(time.Now())
			return
		case <-time.After(poll):
		}
	}
}

func (r *Recorder) read(now time.Time) {
	p := r.Path()
	if p == "" {
		return
	}
	f, err := os.Open(p)
	if err != nil {
		return
	}
	defer f.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := f.Seek(r.off, 0); err != nil {
		return
	}
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil { // a partial last line waits for its newline
			return
		}
		r.off += int64(len(line))
		rec, perr := ParseRecord(string(bytes.TrimSpace(line)))
		if perr != nil {
			r.bad = append(r.bad, perr.Error())
			continue
		}
		rec.Seen = now
		r.recs = append(r.recs, rec)
	}
}

// Records is what was seen so far, in file order.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.recs...)
}

// Bad lists the lines that did not parse.
func (r *Recorder) Bad() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

// Sequence checks that recs are 1, 2, 3, ...: it returns the numbers
// below the highest seen that never came, and the duplicated ones (every
// repeat listed). A number that came late (out of order) is not missing.
func Sequence(recs []Record) (missing, dup []int) {
	seen := map[int]bool{}
	top := 0
	for _, r := range recs {
		if seen[r.Seq] {
			dup = append(dup, r.Seq)
			continue
		}
		seen[r.Seq] = true
		top = max(top, r.Seq)
	}
	for n := 1; n < top; n++ {
		if !seen[n] {
			missing = append(missing, n)
		}
	}
	return missing, dup
}

// Frozen is how long, as the host saw it, the root made no progress
// across a fault that lasted from from to to: the longest interval
// between two consecutive records that ends after from and starts before
// to+settle (a stall just after the fault was undone counts), clipped at
// from (a stall the fault did not cause does not). It also returns how
// long after to the first record came (the recovery); ok is false when
// none came.
func Frozen(recs []Record, from, to time.Time, settle time.Duration) (frozen, recovered time.Duration, ok bool) {
	for i := 1; i < len(recs); i++ {
		a, b := recs[i-1].Seen, recs[i].Seen
		if a.Before(from) {
			a = from
		}
		if b.After(from) && a.Before(to.Add(settle)) && b.Sub(a) > frozen {
			frozen = b.Sub(a)
		}
	}
	for _, r := range recs {
		if r.Seen.After(to) {
			return frozen, r.Seen.Sub(to), true
		}
	}
	return frozen, 0, false
}

// LongestGap is the longest interval between consecutive records seen
// from from to to: the root's stalls without a fault.
func LongestGap(recs []Record, from, to time.Time) time.Duration {
	var g time.Duration
	for i := 1; i < len(recs); i++ {
		a, b := recs[i-1].Seen, recs[i].Seen
		if !a.Before(from) && !b.After(to) && b.Sub(a) > g {
			g = b.Sub(a)
		}
	}
	return g
}

// WriteTSV keeps the records with the host times they were seen.
func WriteTSV(path string, recs []Record) error {
	var b strings.Builder
	b.WriteString("seq\tguest_uptime\thost_seen\n")
	for _, r := range recs {
		fmt.Fprintf(&b, "%d\t%.2f\t%s\n", r.Seq, r.Uptime, r.Seen.UTC().Format("15:04:05.000"))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

package power

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lines hands each log record to the test as it is written.
type lines chan string

func (l lines) Write(p []byte) (int, error) {
	l <- string(p)
	return len(p), nil
}

func TestManualWaitsForConfirmation(t *testing.T) {
	f := filepath.Join(t.TempDir(), "confirm")
	log := make(lines, 16)
	d, err := New("manual", map[string]string{"confirm_file": f, "name": "rack 4 slot 2"}, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	d.(*Manual).Poll = 5 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- d.On(context.Background()) }()
	// The instruction comes first, then the wait for the file: the test
	// confirms only once it has read it, as the person would.
	select {
	case err := <-done:
		t.Fatalf("On returned before confirmation: %v", err)
	case line := <-log:
		if !strings.Contains(line, "switch it ON") || !strings.Contains(line, "rack 4 slot 2") || !strings.Contains(line, "touch "+f) {
			t.Fatalf("instruction not shown:\n%s", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no instruction within 10 s")
	}
	os.WriteFile(f, nil, 0o600)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Status(context.Background()); st != StateOn {
		t.Fatalf("status %v after confirmed On", st)
	}
	if _, err := os.Stat(f); err == nil {
		t.Fatal("confirmation file left behind: the next request would pass unconfirmed")
	}
}

func TestManualGivesUpWithContext(t *testing.T) {
	d, _ := New("manual", map[string]string{"confirm_file": filepath.Join(t.TempDir(), "c")}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := d.Off(ctx); err == nil || !strings.Contains(err.Error(), "power manual off: no confirmation") {
		t.Fatalf("err = %v", err)
	}
}

func TestManualIgnoresStaleConfirmation(t *testing.T) {
	f := filepath.Join(t.TempDir(), "confirm")
	os.WriteFile(f, nil, 0o600) // left from an earlier request
	d, _ := New("manual", map[string]string{"confirm_file": f}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := d.Reset(ctx); err == nil {
		t.Fatal("a stale confirmation file confirmed a new request")
	}
}

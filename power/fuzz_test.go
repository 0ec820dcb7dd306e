package power

import (
	"bufio"
	"bytes"
	"testing"
)

func FuzzQMPRead(f *testing.F) {
	f.Add([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n"))
	f.Add([]byte(`{"return": {"running": true, "status": "running"}}` + "\n"))
	f.Add([]byte(`{"error": {"class": "GenericError", "desc": "x"}}` + "\n"))
	f.Add([]byte(`{"event": "STOP"}` + "\n"))
	q := &QMP{}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := q.read(bufio.NewReaderSize(bytes.NewReader(b), 16))
		if err == nil && m == nil {
			t.Fatal("nil message without error")
		}
	})
}

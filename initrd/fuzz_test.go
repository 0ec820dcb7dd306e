package initrd

import (
	"bytes"
	"io"
	"testing"
)

// FuzzReadNewc feeds arbitrary bytes to the newc reader: it must never
// panic, never report an entry beyond the input, and never accept a name or
// size out of bounds.
func FuzzReadNewc(f *testing.F) {
	f.Add(rawArchive(rawEntry("usr/bin/x", sIFREG|0o755, "data")))
	f.Add(rawArchive(rawEntry("l", sIFLNK|0o777, "target"), rawEntry("d", sIFDIR|0o755, "")))
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), int64(len(data)))
		last := int64(-1)
		for i := 0; i < 1000; i++ {
			e, body, err := r.Next()
			if err != nil {
				return
			}
			if e.Offset <= last || e.Offset >= int64(len(data)) || len(e.Name) > maxNameLen || e.Size > int64(len(data)) {
				t.Fatalf("entry %+v out of bounds (input %d bytes)", e, len(data))
			}
			last = e.Offset
			if e.IsTrailer() {
				return
			}
			if _, err := io.Copy(io.Discard, body); err != nil {
				return
			}
			if r.Pos() > int64(len(data)) {
				t.Fatalf("position %d past input %d", r.Pos(), len(data))
			}
		}
	})
}

// FuzzScan feeds arbitrary bytes to the segment scanner with a small
// decompression cap: no panic, and segments in order inside the input.
func FuzzScan(f *testing.F) {
	arc := rawArchive(rawEntry("init", sIFREG|0o755, "#!/bin/sh\n"))
	f.Add(arc)
	f.Add(append(pad4(append([]byte{}, arc...)), 0, 0, 0, 0))
	f.Add([]byte(magicLZ4 + "\x05\x00\x00\x00\x40abcd"))
	f.Add([]byte(magicZstd + "\x00\x00\x01\x00\x00"))
	f.Add([]byte(magicXZ + "\x00\x01\x69\x22\xde\x36"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &Scanner{Name: "fuzz", MaxSegment: 1 << 20}
		segs, _ := s.Scan(bytes.NewReader(data), int64(len(data)), func(_ *Segment, _ *Entry, b io.Reader) error {
			_, err := io.Copy(io.Discard, b)
			return err
		})
		end := int64(0)
		for _, sg := range segs {
			if sg.Offset < end || sg.Length <= 0 || sg.Offset+sg.Length > int64(len(data)) {
				t.Fatalf("segment %+v out of order or bounds (input %d bytes)", sg, len(data))
			}
			end = sg.Offset + sg.Length
		}
	})
}

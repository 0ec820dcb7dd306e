package catalog

import (
	"bytes"
	"testing"
)

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"name":"b","release":"6.1.0-56-amd64","cmdline":"quiet","kernel":{"file":"vmlinuz","sha256":"` + zeros + `","size":1},"initrd":{"file":"initrd.img","sha256":"` + zeros + `","size":2},"added":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"name":"b","modules":{"file":"../x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := ParseManifest(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := im.validate(); err != nil {
			t.Fatalf("accepted manifest fails validation: %v", err)
		}
		out, err := encodeManifest(im)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseManifest(bytes.NewReader(out)); err != nil {
			t.Fatalf("re-encoded manifest refused: %v\n%s", err, out)
		}
	})
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

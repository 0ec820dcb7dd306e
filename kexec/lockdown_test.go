package kexec

import "testing"

func TestParseLockdown(t *testing.T) {
	for in, want := range map[string]string{
		"[none] integrity confidentiality\n": "none",
		"none [integrity] confidentiality\n": "integrity",
		"none integrity [confidentiality]\n": "confidentiality",
	} {
		if got, err := ParseLockdown(in); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "none integrity confidentiality", "[bogus]", "[]"} {
		if got, err := ParseLockdown(bad); err == nil {
			t.Errorf("%q: %q, want an error", bad, got)
		}
	}
	if Locked("none") || Locked("") || !Locked("integrity") || !Locked("confidentiality") {
		t.Error("Locked")
	}
}

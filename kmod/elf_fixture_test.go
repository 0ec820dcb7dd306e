package kmod

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// fakeModule builds a minimal relocatable x86-64 ELF object whose only
// contents are a .modinfo section holding the given NUL-separated entries,
// which is all ReadInfo looks at.
func fakeModule(entries ...string) []byte {
	var modinfo []byte
	for _, e := range entries {
		modinfo = append(append(modinfo, e...), 0)
	}
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modOff := ehsize
	strOff := modOff + len(modinfo)
	shOff := (strOff + len(shstr) + 7) &^ 7
	out := make([]byte, shOff+3*shentsize)
	le := binary.LittleEndian
	copy(out, "\x7fELF\x02\x01\x01")
	le.PutUint16(out[16:], 1)  // ET_REL
	le.PutUint16(out[18:], 62) // EM_X86_64
	le.PutUint32(out[20:], 1)
	le.PutUint64(out[40:], uint64(shOff))
	le.PutUint16(out[52:], ehsize)
	le.PutUint16(out[58:], shentsize)
	le.PutUint16(out[60:], 3) // sections: null, .modinfo, .shstrtab
	le.PutUint16(out[62:], 2)
	copy(out[modOff:], modinfo)
	copy(out[strOff:], shstr)
	sh := func(i int, name, typ uint32, off, size int) {
		b := out[shOff+i*shentsize:]
		le.PutUint32(b[0:], name)
		le.PutUint32(b[4:], typ)
		le.PutUint64(b[24:], uint64(off))
		le.PutUint64(b[32:], uint64(size))
		le.PutUint64(b[48:], 1)
	}
	sh(1, 1, 1 /* SHT_PROGBITS */, modOff, len(modinfo))
	sh(2, 10, 3 /* SHT_STRTAB */, strOff, len(shstr))
	return out
}

// writeModule writes a fake module at dir/rel.
func writeModule(t *testing.T, dir, rel, name, depends string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	data := fakeModule("license=GPL", "depends="+depends, "name="+name, "vermagic=6.1.0-48-amd64 SMP preempt mod_unload modversions ")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

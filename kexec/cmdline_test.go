package kexec

import (
	"reflect"
	"testing"
)

func TestReuseCmdlineDropsBootImageAndInitrd(t *testing.T) {
	for _, tc := range []struct{ proc, want string }{
		{"BOOT_IMAGE=/vmlinuz-6.1.0-48-amd64 root=/dev/sda1 ro quiet\n", "root=/dev/sda1 ro quiet"},
		{"initrd=\\initrd.img console=ttyS0 initrd=/x", "console=ttyS0"},
		{`dyndbg="file foo.c +p"  BOOT_IMAGE=x   ip=10.0.0.2::10.0.0.1`, `dyndbg="file foo.c +p" ip=10.0.0.2::10.0.0.1`},
		{"quiet -- initrd=kept-for-init", "quiet -- initrd=kept-for-init"},
		{"initrdmem=1 BOOT_IMAGEX=2", "initrdmem=1 BOOT_IMAGEX=2"},
		{"", ""},
	} {
		if got := ReuseCmdline(tc.proc); got != tc.want {
			t.Errorf("ReuseCmdline(%q) = %q, want %q", tc.proc, got, tc.want)
		}
	}
}

func TestAppendCmdlineKeepsKernelParamsBeforeInitArgs(t *testing.T) {
	for _, tc := range []struct{ base, extra, want string }{
		{"console=ttyS0", "rdinit=/ferry/bin/init", "console=ttyS0 rdinit=/ferry/bin/init"},
		{"", " quiet ", "quiet"},
		{"quiet", "", "quiet"},
		{"quiet -- single", "rdinit=/x", "quiet rdinit=/x -- single"},
		{"-- single", "rdinit=/x", "rdinit=/x -- single"},
	} {
		if got := AppendCmdline(tc.base, tc.extra); got != tc.want {
			t.Errorf("AppendCmdline(%q, %q) = %q, want %q", tc.base, tc.extra, got, tc.want)
		}
	}
}

func TestSplitCmdlineHonoursQuotes(t *testing.T) {
	got := splitCmdline(` a "b c"  d="e f" g`)
	want := []string{"a", `"b c"`, `d="e f"`, "g"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q", got)
	}
}

package vmlab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// benchRun is a chain run's output as scripts/bench-chain.sh stamps it
// (host seconds, then the line): the baseline harness's request line and
// console, one line in today's "[host Ns]" form, the harness's figure.
const benchRun = `100.0 full-e2e.sh: borrower lease request (drives everything; console in /x/run-1/console.log)
126.0 ferry: phase boot-a ok in 2s
128.0 [host   28.0s] ferry: phase modules ok in 1.5s
128.1 ferry: phase disks-ro ok in 50ms
129.1 ferry: phase network ok in 1s
129.4 ferry: phase enroll ok in 300ms
131.4 ferry: phase tunnel-a ok in 2s
131.9 ferry: phase wait-root ok in 500ms
133.9 ferry: phase fetch-b ok in 2s
134.5 ferry: phase patch-b ok in 500ms
136.5 ferry: phase kexec ok in 2s
150.0 ferry: phase boot-b ok in 4s
150.1 ferry: phase state ok in 100ms
154.1 ferry: phase modules ok in 4s
155.1 ferry: phase tunnel-b ok in 1s
155.6 ferry: phase mount-root ok in 500ms
156.0 ferry: phase switch-root ok in 400ms
158.0 ferry-root: ready (uptime 8 s)
159.0   lease request -> borrower root ready: 58.1 s; return -> powered off: 5.10 s
`

// TestBenchChainAwk: bench-chain.awk turns a run into the timeline rows
// and figures make bench prints, and sets two sides beside each other.
func TestBenchChainAwk(t *testing.T) {
	prog := filepath.Join(Repo(t), "scripts", "bench-chain.awk")
	cmd := exec.Command("awk", "-v", "pon=100.2", "-v", "dhcp=102.4", "-v", "script=118.6", "-v", "files=120", "-f", prog)
	cmd.Stdin = strings.NewReader(benchRun)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("awk: %v\n%s", err, out)
	}
	for _, want := range []string{
		"row\t1\tpower-on\t0.000\t0.200\t",
		"row\t3\tipxe-script\t2.400\t16.200\tDHCP -> iPXE fetched its script",
		"row\t5\tkernel-a\t20.000\t4.000\t",           // boot-a's line at 126 s, 2 s after the kernel's start
		"row\t7\tA.modules\t26.500\t1.500\tA modules", // stamped at its end
		"row\t16\tA.between\t26.000\t0.650\t",         // 10.5 s of span, 9.85 s of phases
		"fig\town-A\t4.700\n",                         // 10.5 s minus network, enroll, tunnel-a, wait-root, fetch-b
		"row\t17\tkexec-b\t36.500\t9.500\t",           // kexec at 136.5 s, kernel B at 146 s
		"row\t19\tB.state\t50.000\t0.100\tB state",
		"fig\town-B\t4.500\n", // 6 s minus tunnel-b and mount-root
		"row\t25\troot\t56.000\t2.000\t",
		"fig\ttotal\t58.1\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("extract lacks %q:\n%s", want, out)
		}
	}

	dir := t.TempDir()
	slower := strings.ReplaceAll(string(out), "fig\ttotal\t58.1", "fig\ttotal\t70.1")
	for name, kv := range map[string]string{"before-1.kv": slower, "before-2.kv": string(out), "after-1.kv": string(out)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(kv), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tab, err := exec.Command("awk", "-F\t", "-v", "mode=table", "-f", prog,
		filepath.Join(dir, "before-1.kv"), filepath.Join(dir, "before-2.kv"), filepath.Join(dir, "after-1.kv")).CombinedOutput()
	if err != nil {
		t.Fatalf("awk table: %v\n%s", err, tab)
	}
	for _, want := range []string{
		"mean of 2 run(s) before, 1 after",
		"DHCP -> iPXE fetched its script                              +2.4 s  16.20 s |   +2.4 s  16.20 s",
		"lease request -> root ready      64.1 s (70.1 58.1)         58.1 s                     0.91",
		"agent's own time in A            4.70 s                     4.70 s                     1.00",
	} {
		if !strings.Contains(string(tab), want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
}

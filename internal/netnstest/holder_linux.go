package netnstest

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// holding is the line a holder prints once what it holds is in place.
const holding = "holding"

// Hold is the body of a holder test (see Kill9): it tells the parent that
// everything the holder set up is in place, then blocks until killed.
func Hold() {
	os.Stdout.WriteString(holding + "\n")
	select {}
}

// Kill9 runs the test binary's test named holder in ns as its own process
// with env=1 in its environment, waits until it calls Hold, and kills it
// with SIGKILL: no Close, no Teardown, no deferred function runs, as when
// the process holding a data plane dies. It fails t if the holder exits
// before Hold.
func (ns *NS) Kill9(t testing.TB, holder, env string) {
	t.Helper()
	cmd := ns.Command(os.Args[0], "-test.run=^"+holder+"$", "-test.v")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.Contains(sc.Text(), holding) {
		t.Log("holder:", sc.Text())
	}
	if sc.Err() != nil || !strings.Contains(sc.Text(), holding) {
		t.Fatalf("holder process %s did not come up: %v", holder, sc.Err())
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()
}

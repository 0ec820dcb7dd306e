// Package testbin builds the ferry multicall binary once per test
// package, for tests that run it as real processes (the managers, the
// gateway, the CLI), as `make build` does.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// env hands the binary's path from Main to Path.
const env = "FERRY_TEST_BIN"

// Main is a test package's TestMain: it builds the binary into a
// temporary directory, runs the tests and removes it.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin := filepath.Join(dir, "ferry")
	cmd := exec.Command("go", "build", "-o", bin, "ferry")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	os.Setenv(env, bin)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Path is the binary Main built.
func Path() string { return os.Getenv(env) }

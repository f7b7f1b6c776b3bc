package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Issue 9 case 9: `rulenode --help` printed the usage and "flag: help
// requested" and exited 1. The test runs main itself in a child process
// (this test binary, re-entered through TestMain) to see its exit status.
func TestHelpExitsZero(t *testing.T) {
	if os.Getenv("STORELOOP_TEST_RUN_MAIN") != "" {
		os.Args = []string{"rulenode", "--help"}
		main()
		os.Exit(0) // main returned: the exit status is main's to choose
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelpExitsZero$")
	cmd.Env = append(os.Environ(), "STORELOOP_TEST_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rulenode --help: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Usage of rulenode") || strings.Contains(string(out), "help requested") {
		t.Fatalf("rulenode --help printed:\n%s", out)
	}
}

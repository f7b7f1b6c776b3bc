package main

import (
	"strings"
	"testing"

	"github.com/storeloop/storeloop/internal/procs"
)

// Issue 9 case 9: `rulenode --help` printed the usage and "flag: help
// requested" and exited 1.
func TestHelpExitsZero(t *testing.T) {
	out, err := procs.RunMain(t, main, "rulenode", "--help")
	if err != nil {
		t.Fatalf("rulenode --help: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Usage of rulenode") || strings.Contains(out, "help requested") {
		t.Fatalf("rulenode --help printed:\n%s", out)
	}
}

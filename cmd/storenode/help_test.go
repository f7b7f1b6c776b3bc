package main

import (
	"strings"
	"testing"

	"github.com/storeloop/storeloop/internal/procs"
)

// Issue 9 case 9: `storenode --help` printed the usage and "flag: help
// requested" and exited 1.
func TestHelpExitsZero(t *testing.T) {
	out, err := procs.RunMain(t, main, "storenode", "--help")
	if err != nil {
		t.Fatalf("storenode --help: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Usage of storenode") || strings.Contains(out, "help requested") {
		t.Fatalf("storenode --help printed:\n%s", out)
	}
}

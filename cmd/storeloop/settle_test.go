package main

import (
	"strings"
	"testing"

	"github.com/storeloop/storeloop/internal/storetest"
)

func TestSettle(t *testing.T) {
	url := storetest.Start(t)
	cases := []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderrPart string
	}{
		{name: "no rule sets is settled", args: []string{"settle"}, code: exitOK, stdout: "settled\n"},
		{name: "a rule set without a consumer is not", args: []string{"settle", "--timeout", "100ms", "--rule-set", "nope"},
			code: exitCommand, stderrPart: "not settled within 100ms: client: not settled (rule set nope has no consumer yet)"},
		{name: "bad timeout", args: []string{"settle", "--timeout", "0s"}, code: exitUsage, stderrPart: "--timeout must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, url, "", tc.args...)
			if code != tc.code || stdout != tc.stdout || !strings.Contains(stderr, tc.stderrPart) {
				t.Errorf("settle %v: code %d stdout %q stderr %q; want code %d stdout %q stderr containing %q",
					tc.args, code, stdout, stderr, tc.code, tc.stdout, tc.stderrPart)
			}
		})
	}
}

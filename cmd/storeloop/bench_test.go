package main

import "testing"

// TestBenchRulesUsage checks that bench rules refuses bad sizes before it
// starts anything (exit 2, the flag named).
func TestBenchRulesUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"too few events", []string{"--events", "99"}, "--events must be at least 100"},
		{"no events in flight", []string{"--in-flight", "0"}, "--in-flight must be at least 1"},
		{"no idle turns", []string{"--turns", "0"}, "--turns must be at least 1"},
		{"zero runners", []string{"--runners", "1,0"}, "--runners: 0 is not a runner count"},
		{"not a number", []string{"--runners", "two"}, `invalid argument "two" for "--runners" flag: strconv.Atoi: parsing "two": invalid syntax`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, "", "", append([]string{"bench", "rules"}, tt.args...)...)
			want := "error: " + tt.msg + "\nRun 'storeloop bench rules --help' for usage.\n"
			if code != exitUsage || stdout != "" || stderr != want {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stderr %q", code, stdout, stderr, exitUsage, want)
			}
		})
	}
}

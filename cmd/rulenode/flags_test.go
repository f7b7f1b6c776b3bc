package main

import (
	"os"
	"testing"

	"github.com/storeloop/storeloop/rulenode"
)

func TestStartFlag(t *testing.T) {
	cases := []struct {
		name    string
		env     string
		args    []string
		want    rulenode.StartPolicy
		wantErr bool
	}{
		{name: "default", want: rulenode.StartAll},
		{name: "flag", args: []string{"--start", "new"}, want: rulenode.StartNew},
		{name: "environment", env: "new", want: rulenode.StartNew},
		{name: "flag over environment", env: "new", args: []string{"--start", "all"}, want: rulenode.StartAll},
		{name: "unknown", args: []string{"--start", "last"}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STORELOOP_START", tc.env) // restored when the test ends
			if tc.env == "" {
				os.Unsetenv("STORELOOP_START")
			}
			f, err := parseFlags(append([]string{"--rules", "r.yaml"}, tc.args...))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed %v, want an error", f.start)
				}
				return
			}
			if err != nil || f.start != tc.want {
				t.Fatalf("start = %v, %v; want %v", f, err, tc.want)
			}
		})
	}
}

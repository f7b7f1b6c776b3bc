package main

import (
	"os"
	"testing"

	"github.com/storeloop/storeloop/rulenode"
)

func TestBatchFlag(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		args      []string
		want      int
		wantErr   bool
	}{
		{name: "default", want: rulenode.DefaultBatching},
		{name: "flag", args: []string{"--batch", "64"}, want: 64},
		{name: "environment", env: "16", want: 16},
		{name: "flag over environment", env: "16", args: []string{"--batch", "0"}, want: 0},
		{name: "the cap", args: []string{"--batch", "256"}, want: 256},
		{name: "past the cap", args: []string{"--batch", "257"}, wantErr: true},
		{name: "negative", args: []string{"--batch", "-1"}, wantErr: true},
		{name: "not a number", env: "lots", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STORELOOP_BATCH", tc.env)
			if tc.env == "" {
				os.Unsetenv("STORELOOP_BATCH")
			}
			f, err := parseFlags(append([]string{"--rules", "r.yaml"}, tc.args...))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed batch %d, want an error", f.batch)
				}
				return
			}
			if err != nil || f.batch != tc.want {
				t.Fatalf("batch = %v, %v; want %d", f, err, tc.want)
			}
		})
	}
}

package main

import (
	"os"
	"testing"
	"time"

	"github.com/storeloop/storeloop/storenode"
)

func TestStartTimeoutFlag(t *testing.T) {
	cases := []struct {
		name    string
		env     string // STORELOOP_START_TIMEOUT; "" leaves it unset
		args    []string
		want    time.Duration
		wantErr string
	}{
		{name: "default", want: storenode.DefaultStartTimeout},
		{name: "flag", args: []string{"--start-timeout", "2m"}, want: 2 * time.Minute},
		{name: "environment", env: "90s", want: 90 * time.Second},
		{name: "flag over environment", env: "90s", args: []string{"--start-timeout", "10s"}, want: 10 * time.Second},
		{name: "too short", args: []string{"--start-timeout", "10ms"}, wantErr: "storenode: start timeout 10ms out of range 1s..1h"},
		{name: "malformed environment", env: "later", wantErr: `STORELOOP_START_TIMEOUT="later": parse error`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STORELOOP_START_TIMEOUT", tc.env)
			if tc.env == "" {
				os.Unsetenv("STORELOOP_START_TIMEOUT")
			}
			f, err := parseFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || f.startTimeout != tc.want {
				t.Fatalf("start timeout = %v, %v; want %v", f.startTimeout, err, tc.want)
			}
		})
	}
}

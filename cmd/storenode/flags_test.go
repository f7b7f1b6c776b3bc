package main

import (
	"os"
	"testing"
)

func TestReplicasFlag(t *testing.T) {
	cases := []struct {
		name    string
		env     string // STORELOOP_REPLICAS; "" leaves it unset
		args    []string
		want    int
		wantErr bool
	}{
		{name: "default", want: 1},
		{name: "flag", args: []string{"--nats", "nats://x", "--replicas", "3"}, want: 3},
		{name: "environment", env: "3", args: []string{"--nats", "nats://x"}, want: 3},
		{name: "flag over environment", env: "3", args: []string{"--nats", "nats://x", "--replicas", "5"}, want: 5},
		{name: "malformed environment", env: "three", wantErr: true},
		{name: "copies need an external cluster", env: "3", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STORELOOP_REPLICAS", tc.env) // restored when the test ends
			if tc.env == "" {
				os.Unsetenv("STORELOOP_REPLICAS")
			}
			f, err := parseFlags(tc.args)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed replicas %d, want an error", f.replicas)
				}
				return
			}
			if err != nil || f.replicas != tc.want {
				t.Fatalf("replicas = %v, %v; want %d", f, err, tc.want)
			}
		})
	}
}

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

func TestAcceptDataLossFlag(t *testing.T) {
	cases := []struct {
		name    string
		env     string // STORELOOP_ACCEPT_DATA_LOSS; "" leaves it unset
		args    []string
		want    bool
		wantErr bool
	}{
		{name: "default", want: false},
		{name: "flag", args: []string{"--accept-data-loss"}, want: true},
		{name: "environment", env: "true", want: true},
		{name: "flag over environment", env: "true", args: []string{"--accept-data-loss=false"}, want: false},
		{name: "malformed environment", env: "sure", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STORELOOP_ACCEPT_DATA_LOSS", tc.env)
			if tc.env == "" {
				os.Unsetenv("STORELOOP_ACCEPT_DATA_LOSS")
			}
			f, err := parseFlags(tc.args)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed %v, want an error", f.acceptDataLoss)
				}
				return
			}
			if err != nil || f.acceptDataLoss != tc.want {
				t.Fatalf("acceptDataLoss = %v, %v; want %v", f, err, tc.want)
			}
		})
	}
}

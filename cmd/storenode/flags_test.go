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
		{name: "flag", args: []string{"--nats", "nats://x", "--proof-key", "k.nk", "--replicas", "3"}, want: 3},
		{name: "environment", env: "3", args: []string{"--nats", "nats://x", "--proof-key", "k.nk"}, want: 3},
		{name: "flag over environment", env: "3", args: []string{"--nats", "nats://x", "--proof-key", "k.nk", "--replicas", "5"}, want: 5},
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

func TestLimitFlags(t *testing.T) {
	cases := []struct {
		name         string
		env          map[string]string
		args         []string
		scan, dedupe int
		wantErr      string
	}{
		{name: "defaults", scan: 100_000, dedupe: 32 << 20},
		{name: "flags", args: []string{"--max-scan", "5000", "--dedupe-bytes", "2097152"}, scan: 5000, dedupe: 2 << 20},
		{name: "environment", env: map[string]string{"STORELOOP_MAX_SCAN": "7", "STORELOOP_DEDUPE_BYTES": "4194304"}, scan: 7, dedupe: 4 << 20},
		{name: "scan cap not positive", args: []string{"--max-scan", "0"}, wantErr: "storenode: max scan 0 must be positive"},
		{name: "dedupe budget too small", args: []string{"--dedupe-bytes", "1000"}, wantErr: "storenode: dedupe bytes 1000 must be at least 1 MiB"},
		{name: "snapshot interval too short", args: []string{"--snapshot-interval", "10ms"}, wantErr: "storenode: snapshot interval 10ms is under a second"},
		{name: "snapshots kept", env: map[string]string{"STORELOOP_SNAPSHOT_KEEP": "0"}, wantErr: "storenode: snapshots kept 0 out of range 1..100"},
		{name: "snapshot cap too small", env: map[string]string{"STORELOOP_SNAPSHOT_MAX_BYTES": "1000"}, wantErr: "storenode: snapshot max bytes 1000 out of range 1 MiB..1 TiB"},
		{name: "snapshot cap too large", args: []string{"--snapshot-max-bytes", "9223372036854775807"}, wantErr: "storenode: snapshot max bytes 9223372036854775807 out of range 1 MiB..1 TiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{"STORELOOP_MAX_SCAN", "STORELOOP_DEDUPE_BYTES", "STORELOOP_SNAPSHOT_KEEP", "STORELOOP_SNAPSHOT_MAX_BYTES"} {
				t.Setenv(name, tc.env[name])
				if _, ok := tc.env[name]; !ok {
					os.Unsetenv(name)
				}
			}
			f, err := parseFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || f.maxScan != tc.scan || f.dedupeBytes != tc.dedupe {
				t.Fatalf("parseFlags = %+v, %v; want max scan %d, dedupe bytes %d", f, err, tc.scan, tc.dedupe)
			}
		})
	}
}

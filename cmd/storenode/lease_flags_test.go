package main

import (
	"os"
	"testing"
	"time"

	"github.com/storeloop/storeloop/storenode"
)

func TestLeaseFlag(t *testing.T) {
	cases := []struct {
		name    string
		env     string // STORELOOP_LEASE; "" leaves it unset
		args    []string
		want    time.Duration
		options int // lease options given to the node
		wantErr string
	}{
		{name: "default, embedded: no lease", want: storenode.DefaultLease},
		{name: "default with --nats", args: []string{"--nats", "nats://x", "--data", "d"}, want: storenode.DefaultLease, options: 1},
		{name: "flag", args: []string{"--nats", "nats://x", "--data", "d", "--lease", "5s"}, want: 5 * time.Second, options: 1},
		{name: "environment", env: "4s", args: []string{"--nats", "nats://x", "--data", "d"}, want: 4 * time.Second, options: 1},
		{name: "zero: the only writer", args: []string{"--nats", "nats://x", "--data", "d", "--lease", "0"}},
		{name: "too short", args: []string{"--nats", "nats://x", "--data", "d", "--lease", "10ms"}, wantErr: "storenode: lease 10ms out of range 300ms..1m"},
		{name: "malformed environment", env: "soon", wantErr: `STORELOOP_LEASE="soon": parse error`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STORELOOP_LEASE", tc.env)
			if tc.env == "" {
				os.Unsetenv("STORELOOP_LEASE")
			}
			f, err := parseFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.lease != tc.want || len(f.leadership()) != tc.options {
				t.Fatalf("lease = %v (%d options); want %v (%d)", f.lease, len(f.leadership()), tc.want, tc.options)
			}
		})
	}
}

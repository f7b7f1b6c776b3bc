package storenode_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/storenode"
)

// WithReplicas reaches the stream's configuration: one copy is accepted by
// a single server, more are refused by it (they need a cluster), and
// counts outside 1..5 are refused before anything is dialled.
func TestWithReplicas(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		wantErr string // "" for success
	}{
		{"one copy", 1, ""},
		{"three copies need a cluster", 3, "replicas > 1 not supported in non-clustered mode"},
		{"zero", 0, "replicas 0 out of range"},
		{"six", 6, "replicas 6 out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			nc := natstest.Connect(t, natstest.Server(t))
			node, err := storenode.Start(ctx, nc, storenode.WithReplicas(tc.n))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Start: err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer node.Stop(ctx)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			st, err := js.Stream(ctx, "STORELOOP")
			if err != nil {
				t.Fatal(err)
			}
			if got := st.CachedInfo().Config.Replicas; got != tc.n {
				t.Errorf("stream replicas = %d, want %d", got, tc.n)
			}
		})
	}
}

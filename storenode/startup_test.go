package storenode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/streamread"
)

// TestStartTransient: what a start waits out (a cluster without a leader
// or quorum, a lost server) and what fails it at once.
func TestStartTransient(t *testing.T) {
	n := &Node{nc: natstest.Connect(t, natstest.Server(t))}
	api := func(code int, errCode jetstream.ErrorCode) error {
		return fmt.Errorf("storenode: stream S: %w", &jetstream.APIError{Code: code, ErrorCode: errCode})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"cluster not available", api(503, 10008), true},
		{"insufficient resources", api(503, 10023), true},
		{"no peers for placement", api(400, jsClusterNoPeers), true},
		{"cluster not leader", api(500, jsClusterNotLeader), true},
		{"stream offline", api(500, jsStreamOffline), true},
		{"no reply within a try", fmt.Errorf("stream: %w", context.DeadlineExceeded), true},
		{"nats timeout", nats.ErrTimeout, true},
		{"no responders", nats.ErrNoResponders, true},
		{"disconnected", fmt.Errorf("replay: %w", nats.ErrDisconnected), true},
		{"stalled read", streamread.ErrStalled, true},
		{"stream without a leader", fmt.Errorf("replay: %w", errLeaderless), true},
		{"jetstream not enabled", jetstream.ErrJetStreamNotEnabled, false},
		{"jetstream not enabled for the account", jetstream.ErrJetStreamNotEnabledForAccount, false},
		{"stream configured otherwise", api(400, jetstream.JSErrCodeStreamNameInUse), false},
		{"another API error", api(403, 10000), false},
		{"data loss", &DataLossError{Stream: "S", Mark: 9}, false},
		{"sealed stream", errors.New("storenode: stream S is sealed"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := n.transient(tt.err); got != tt.want {
				t.Fatalf("transient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestStartStepFinal: a final error fails the start at its first try;
// a transient one is tried again until the step succeeds.
func TestStartStepFinal(t *testing.T) {
	n := &Node{nc: natstest.Connect(t, natstest.Server(t)), log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	final := &DataLossError{Stream: "S", Mark: 9}
	tries := 0
	err := n.startStep(ctx, "step", false, func(context.Context) error { tries++; return final })
	if !errors.Is(err, final) || tries != 1 {
		t.Fatalf("final error: %v after %d tries, want it after 1", err, tries)
	}
	tries = 0
	err = n.startStep(ctx, "step", false, func(context.Context) error {
		if tries++; tries < 3 {
			return nats.ErrNoResponders
		}
		return nil
	})
	if err != nil || tries != 3 {
		t.Fatalf("transient errors: %v after %d tries, want success at the 3rd", err, tries)
	}
	ended, cancel := context.WithCancelCause(ctx)
	cancel(errStartTimeout)
	if err := n.startStep(ended, "step", false, func(context.Context) error { return nats.ErrNoResponders }); !errors.Is(err, errStartTimeout) || !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("past the start timeout: %v, want the timeout and the last error", err)
	}
}

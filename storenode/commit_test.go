package storenode

import (
	"errors"
	"testing"
)

// A flight whose signing failed was never published: its writes are
// refused (answered unavailable), not of unknown outcome (indeterminate).
// One whose publishing failed may have gone out in part: unknown.
func TestUnsentFlightIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		unsent bool
		want   int
	}{
		{"signing failed", true, outcomeRefused},
		{"publishing failed", false, outcomeUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &staged{}
			f := &flight{published: []*staged{s}, pubErr: errors.New("failed"), unsent: tc.unsent}
			if err := (&Node{}).awaitAcks(f); err == nil {
				t.Fatal("awaitAcks: no error")
			}
			if s.outcome != tc.want {
				t.Fatalf("outcome %d, want %d", s.outcome, tc.want)
			}
		})
	}
}

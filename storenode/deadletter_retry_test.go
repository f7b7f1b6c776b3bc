package storenode

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// retryWhileTaken looks again only while the stream's name is taken, at
// most deadLetterAttempts times, and stops when its context ends: a server
// that keeps answering "not found" to the lookup and "in use" to the
// create cannot hold a start forever.
func TestRetryWhileTaken(t *testing.T) {
	other := errors.New("refused")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name      string
		ctx       context.Context
		results   []error // try's answers, the last one repeated
		wantCalls int
		wantErr   error
	}{
		{"created", context.Background(), []error{nil}, 1, nil},
		{"taken, then found", context.Background(), []error{jetstream.ErrStreamNameAlreadyInUse, jetstream.ErrStreamNameAlreadyInUse, nil}, 3, nil},
		{"another error ends it", context.Background(), []error{jetstream.ErrStreamNameAlreadyInUse, other}, 2, other},
		{"taken for ever", context.Background(), []error{jetstream.ErrStreamNameAlreadyInUse}, deadLetterAttempts, jetstream.ErrStreamNameAlreadyInUse},
		{"context ended", cancelled, []error{jetstream.ErrStreamNameAlreadyInUse}, 1, context.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := retryWhileTaken(tc.ctx, func(context.Context) error {
				calls++
				return tc.results[min(calls, len(tc.results))-1]
			})
			if calls != tc.wantCalls || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("%d calls, err %v; want %d calls, err %v", calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
}

package client

import (
	"errors"
	"time"
)

// A store node failover (see docs/protocol.md, "Leader and standby")
// leaves a gap in which no store node serves the command subjects: the
// old leader is gone or has stopped its service, the new one has not yet
// caught up and fenced the stream. A request then finds no responders.
// An election of the stream's leader in a NATS cluster (a server lost)
// leaves a longer one, in which the store node serves but cannot append:
// it answers unavailable (nothing applied) or indeterminate (retry with
// the same command id), or not at all while it reconnects. Either way
// the command is sent again, with the same command id (applied at most
// once), until a store node applies it or the failover wait has passed.
const (
	// DefaultFailoverWait covers an election of the stream's leader:
	// nats-server elects one 4 to 9 s after the old one is lost, and the
	// store node then replays what it missed.
	DefaultFailoverWait = 20 * time.Second
	// failoverPoll caps the wait between attempts during a failover, so
	// that writes resume soon after the store node serves again.
	failoverPoll = 100 * time.Millisecond
)

// WithFailoverWait sets how long a command that fails with a retryable
// error (no store node serving, no reply, unavailable, indeterminate) is
// retried, past [WithRetries], from its first attempt (default
// DefaultFailoverWait; 0: only the retries). The context bounds it too.
// Other errors are answers and never retried.
func WithFailoverWait(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return errors.New("client: failover wait must be >= 0")
		}
		o.failover = d
		return nil
	}
}

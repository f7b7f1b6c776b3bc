package client

import (
	"errors"
	"time"
)

// A store node failover (see docs/protocol.md, "Leader and standby")
// leaves a gap in which no store node serves the command subjects: the
// old leader is gone or has stopped its service, the new one has not yet
// caught up and fenced the stream. A request then finds no responders;
// nothing was applied, so it is sent again, with the same command id,
// until a leader answers or the failover wait has passed.
const (
	// DefaultFailoverWait covers a failover with the default lease
	// (1.5s) three times.
	DefaultFailoverWait = 5 * time.Second
	// failoverPoll caps the wait between attempts during a failover, so
	// that writes resume soon after the new leader serves.
	failoverPoll = 100 * time.Millisecond
)

// WithFailoverWait sets how long a command that finds no store node
// serving is retried, past [WithRetries], from its first attempt (default
// DefaultFailoverWait; 0: only the retries). The context bounds it too.
func WithFailoverWait(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return errors.New("client: failover wait must be >= 0")
		}
		o.failover = d
		return nil
	}
}

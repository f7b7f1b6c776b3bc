package rulenode

import "time"

// Clock is the time a runner's temporal rules go by: when a pending
// absence's deadline has passed (the deadline itself is the after
// event's store time plus within). Tests set one they move by hand, so
// that they do not wait real durations.
type Clock interface {
	Now() time.Time
	// After sends the time on the channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

// WithClock sets the runner's clock (default: the system clock).
func WithClock(c Clock) RunnerOption { return func(o *runnerOptions) { o.clock = c } }

// systemClock is the default Clock.
type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

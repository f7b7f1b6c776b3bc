package client

import (
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

// Option configures a [Client].
type Option func(*options) error

type options struct {
	prefix   string
	stream   string
	timeout  time.Duration
	retries  int
	failover time.Duration
	logger   *slog.Logger
	tracerP  trace.TracerProvider
	natsName string
	natsOpts []nats.Option
	scoped   bool // bucket-scoped command subjects
	dialSet  bool // WithName or WithNATSOptions: options of the connection Connect opens
}

// Defaults of the options.
const (
	DefaultTimeout = 5 * time.Second
	DefaultRetries = 3
)

func defaultOptions() options {
	return options{
		prefix:   DefaultCommandPrefix,
		stream:   DefaultStream,
		timeout:  DefaultTimeout,
		retries:  DefaultRetries,
		failover: DefaultFailoverWait,
		natsName: "storeloop-client",
	}
}

// WithCommandPrefix sets the first token of command subjects (default
// "store", the store node's default).
func WithCommandPrefix(prefix string) Option {
	return func(o *options) error {
		if prefix == "" {
			return errors.New("client: empty command prefix")
		}
		o.prefix = prefix
		return nil
	}
}

// WithScopedSubjects sends the commands that name buckets on their
// bucket-scoped subjects, <prefix>.<op>.<bucket> (a transaction:
// <prefix>.tx.<b1>.<b2>... for every bucket it touches, sorted), which
// credentials can allow per bucket (`storeloop auth user --rules`). Store
// nodes from before the extension do not serve them.
func WithScopedSubjects() Option {
	return func(o *options) error { o.scoped = true; return nil }
}

// WithTimeout bounds each request attempt (default 5s). The whole call is
// bounded by its context, retries included.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("client: timeout must be positive")
		}
		o.timeout = d
		return nil
	}
}

// WithRetries sets how many times a request is sent again after no store
// node answered, a timeout, or an unavailable reply (default 3; 0 disables).
func WithRetries(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return errors.New("client: retries must be >= 0")
		}
		o.retries = n
		return nil
	}
}

// WithLogger sets the logger for retries and tail warnings (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.logger = l
		return nil
	}
}

// WithTracerProvider sets where client spans go (default: the global
// provider at the time of each call).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) error {
		o.tracerP = tp
		return nil
	}
}

// WithStream names the JetStream stream that [Client.Watch],
// [Client.Follow] and [Client.Tail] read (default "STORELOOP").
func WithStream(name string) Option {
	return func(o *options) error {
		if name == "" {
			return errors.New("client: empty stream name")
		}
		o.stream = name
		return nil
	}
}

// WithName sets the NATS connection name used by [Connect]; [New] refuses
// it (its connection is already named).
func WithName(name string) Option {
	return func(o *options) error {
		o.natsName, o.dialSet = name, true
		return nil
	}
}

// WithNATSOptions adds options to the connection [Connect] opens, such as
// credentials and TLS (auth.ConnConfig.NATSOptions gives storeloop's).
// [New] refuses it: give them to the connection it is given.
func WithNATSOptions(opts ...nats.Option) Option {
	return func(o *options) error {
		o.natsOpts, o.dialSet = append(o.natsOpts, opts...), true
		return nil
	}
}

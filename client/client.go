package client

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/events"
)

// Defaults re-exported from the wire contract for readers of this package.
const (
	DefaultCommandPrefix = events.DefaultCommandPrefix
	DefaultStream        = events.DefaultStream
)

// instrumentation is the OpenTelemetry scope name of the client's spans.
const instrumentation = "github.com/storeloop/storeloop/client"

// Client talks to a store node over NATS. It is safe for concurrent use.
type Client struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	opts   options
	log    *slog.Logger
	ownsNC bool
	// keyFields caches bucket → key field for transactions.
	keyFields sync.Map
}

// Connect dials NATS at url and returns a client that closes the connection
// on [Client.Close]. A connection failure is an *events.Error with code
// unavailable wrapping the NATS error.
func Connect(url string, opts ...Option) (*Client, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name(o.natsName)}, o.natsOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", events.Errorf(events.CodeUnavailable, "connect to NATS at %s", url), err)
	}
	c, err := newClient(nc, o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.ownsNC = true
	return c, nil
}

// New returns a client over an existing connection; [Client.Close] leaves
// the connection open. Options of a connection to open (WithName,
// WithNATSOptions) are refused.
func New(nc *nats.Conn, opts ...Option) (*Client, error) {
	if nc == nil {
		return nil, errors.New("client: nil NATS connection")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.dialSet {
		// Ignored, they would drop credentials or TLS the caller meant.
		return nil, errors.New("client: WithName and WithNATSOptions configure the connection Connect opens; New uses the connection it is given")
	}
	return newClient(nc, o)
}

func buildOptions(opts []Option) (options, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

func newClient(nc *nats.Conn, o options) (*Client, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("client: jetstream: %w", err)
	}
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{nc: nc, js: js, opts: o, log: log}, nil
}

// Conn returns the client's NATS connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// CommandPrefix is the first token of the store's command subjects.
func (c *Client) CommandPrefix() string { return c.opts.prefix }

// ScopedSubjects reports whether the client sends its commands on
// bucket-scoped subjects ([WithScopedSubjects]); store.batch has none.
func (c *Client) ScopedSubjects() bool { return c.opts.scoped }

// Close closes the NATS connection if the client opened it.
func (c *Client) Close() {
	if c.ownsNC {
		c.nc.Close()
	}
}

func (c *Client) tracer() trace.Tracer {
	tp := c.opts.tracerP
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(instrumentation)
}

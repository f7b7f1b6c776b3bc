// Package bench measures storeloop against raw NATS/JetStream baselines in
// the same run, on the same embedded server: `go test -bench` in storenode
// and `storeloop bench writes` both use it, so the two report the same thing.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/storenode"
)

// Env is an embedded NATS server with a store node and a raw baseline
// stream, in one fsync mode. NC is the benchmark's own connection; the
// store node has one of its own, in process, as cmd/storenode connects
// to its embedded server.
type Env struct {
	Mode    storenode.FsyncMode
	Server  *server.Server
	NC      *nats.Conn
	JS      jetstream.JetStream
	Node    *storenode.Node
	Client  *client.Client
	dir     string
	storeNC *nats.Conn
}

// rawStream is the baseline stream: plain JetStream, same server, same disk.
const rawStream = "BENCHRAW"

// NewEnv starts the environment with its data under a new temporary
// directory, removed by Close; opts are added to the store node's.
func NewEnv(ctx context.Context, mode storenode.FsyncMode, nodeOpts ...storenode.Option) (*Env, error) {
	dir, err := os.MkdirTemp("", "storeloop-bench-")
	if err != nil {
		return nil, err
	}
	e := &Env{Mode: mode, dir: dir}
	srv, opts, err := storenode.StartEmbedded(storenode.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0", Fsync: mode})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e.Server = srv
	if e.NC, err = nats.Connect(srv.ClientURL()); err != nil {
		e.Close()
		return nil, err
	}
	if e.JS, err = jetstream.New(e.NC); err != nil {
		e.Close()
		return nil, err
	}
	if _, err = e.JS.CreateStream(ctx, jetstream.StreamConfig{Name: rawStream, Subjects: []string{"benchraw.>"}, Storage: jetstream.FileStorage, AllowAtomicPublish: true}); err != nil {
		e.Close()
		return nil, err
	}
	opts = append(append(opts, storenode.WithLogger(slog.New(slog.DiscardHandler))), nodeOpts...)
	// The options cmd/storenode gives its connection to its own server.
	if e.storeNC, err = nats.Connect("", nats.InProcessServer(srv), nats.Name("storenode"), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1)); err != nil {
		e.Close()
		return nil, err
	}
	if e.Node, err = storenode.Start(ctx, e.storeNC, opts...); err != nil {
		e.Close()
		return nil, err
	}
	// The client gets its own connection, as a separate process would.
	if e.Client, err = client.Connect(srv.ClientURL()); err != nil {
		e.Close()
		return nil, err
	}
	err = e.Client.Define(ctx, events.BucketDef{Bucket: "bench", Key: "id", Schema: map[string]events.FieldDef{
		"id":      {Type: events.TypeNumber, Generated: events.GenAutoincrement},
		"payload": {Type: events.TypeString, Required: true},
		"n":       {Type: events.TypeNumber},
	}})
	if err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Close stops everything and removes the data.
func (e *Env) Close() {
	if e.Client != nil {
		e.Client.Close()
	}
	if e.Node != nil {
		e.Node.Stop(context.Background())
	}
	if e.storeNC != nil {
		e.storeNC.Close()
	}
	if e.NC != nil {
		e.NC.Close()
	}
	if e.Server != nil {
		e.Server.Shutdown()
		e.Server.WaitForShutdown()
	}
	os.RemoveAll(e.dir)
}

// payload is the body of every benchmark write: a small record, as most are.
var payload = []byte(`{"payload":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","n":1}`)

// Op is one benchmarked write.
type Op func(ctx context.Context) error

// StoreInsert is an insert through the Go client: request → store node
// (validate, group commit, fsync per the mode) → reply.
func (e *Env) StoreInsert() Op {
	b := e.Client.Bucket("bench")
	rec := events.Record{"payload": string(payload[12:76]), "n": 1.0}
	return func(ctx context.Context) error {
		_, err := b.Insert(ctx, rec)
		return err
	}
}

// RawPublish is a synchronous JetStream publish: one message, wait for its
// ack. With the server in FsyncAlways mode it is a per-write fsynced publish.
func (e *Env) RawPublish() Op {
	return func(ctx context.Context) error {
		_, err := e.JS.Publish(ctx, "benchraw.publish", payload)
		return err
	}
}

// NaiveHop starts the naive store: a NATS responder that does a synchronous
// JetStream publish per request and then replies (no validation, no
// batching). It returns the op that calls it and a stop function.
func (e *Env) NaiveHop() (Op, func(), error) {
	nc, err := nats.Connect(e.Server.ClientURL())
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	sub, err := nc.QueueSubscribe("benchnaive.insert", "naive", func(m *nats.Msg) {
		if _, err := js.Publish(context.Background(), "benchraw.naive", m.Data); err != nil {
			m.Respond([]byte(`{"error":{"code":"unavailable"}}`))
			return
		}
		m.Respond([]byte(`{"result":{}}`))
	})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	caller, err := nats.Connect(e.Server.ClientURL())
	if err != nil {
		sub.Unsubscribe()
		nc.Close()
		return nil, nil, err
	}
	op := func(ctx context.Context) error {
		_, err := caller.RequestWithContext(ctx, "benchnaive.insert", payload)
		return err
	}
	return op, func() { caller.Close(); sub.Unsubscribe(); nc.Close() }, nil
}

// Run performs n ops with the given number of concurrent callers and returns
// the elapsed time.
func Run(ctx context.Context, op Op, n, callers int) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	for range callers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := op(ctx); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// Result is one measured scenario.
type Result struct {
	Mode     storenode.FsyncMode
	Scenario string
	Callers  int
	Ops      int
	Elapsed  time.Duration
}

// PerSecond is the throughput.
func (r Result) PerSecond() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

func (r Result) String() string {
	return fmt.Sprintf("%-8s %-22s %3d callers %9.0f ops/s", r.Mode, r.Scenario, r.Callers, r.PerSecond())
}

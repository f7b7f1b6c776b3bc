package examples

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/storenode"
)

// Define defines the scenario's buckets in the store cl talks to.
func (s *Scenario) Define(ctx context.Context, cl *client.Client) error {
	for _, def := range s.Buckets {
		if err := cl.Define(ctx, def); err != nil {
			return fmt.Errorf("examples: define %s: %w", def.Bucket, err)
		}
	}
	return nil
}

// Local is a store node on an embedded NATS server (JetStream in a
// temporary directory) in this process: what a Go program running a
// scenario needs, without daemons.
type Local struct {
	URL    string
	Client *client.Client

	srv  *server.Server
	nc   *nats.Conn
	node *storenode.Node
	dir  string
}

// StartLocal starts an embedded NATS server on a free loopback port and a
// store node on it. Close stops both and removes their data.
func StartLocal(ctx context.Context) (_ *Local, err error) {
	l := &Local{}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if l.dir, err = os.MkdirTemp("", "storeloop-example-"); err != nil {
		return nil, err
	}
	srv, opts, err := storenode.StartEmbedded(storenode.EmbeddedConfig{DataDir: l.dir, Listen: "127.0.0.1:0"})
	if err != nil {
		return nil, err
	}
	l.srv, l.URL = srv, srv.ClientURL()
	if l.nc, err = nats.Connect(l.URL, nats.Name("storenode")); err != nil {
		return nil, err
	}
	opts = append(opts, storenode.WithLogger(slog.New(slog.DiscardHandler)))
	if l.node, err = storenode.Start(ctx, l.nc, opts...); err != nil {
		return nil, err
	}
	if l.Client, err = client.Connect(l.URL); err != nil {
		return nil, err
	}
	return l, nil
}

// Close stops what StartLocal started, in reverse order.
func (l *Local) Close() {
	if l.Client != nil {
		l.Client.Close()
	}
	if l.node != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		l.node.Stop(ctx)
		cancel()
	}
	if l.nc != nil {
		l.nc.Close()
	}
	if l.srv != nil {
		l.srv.Shutdown()
		l.srv.WaitForShutdown()
	}
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

// Rules is a rule set running in this process: a [rulenode.Runner] on its
// own connection, as a separate rule node would have.
type Rules struct {
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
	stop   sync.Once
	err    error
}

// RunRules starts a runner of set against the NATS server at url and
// returns once it is bound to its consumer and fetching events. Stop it
// with Stop.
func RunRules(ctx context.Context, url string, set *rulenode.RuleSet, opts ...rulenode.RunnerOption) (*Rules, error) {
	return runRunner(ctx, url, set.Name, func(js jetstream.JetStream, cl *client.Client) (*rulenode.Runner, error) {
		return rulenode.NewRunner(js, cl, set, opts...), nil
	})
}

// RunDeployed is RunRules for the deployed rule set name (as `rulenode
// --ruleset name`): it runs the current version and switches to new ones.
func RunDeployed(ctx context.Context, url, name string, opts ...rulenode.RunnerOption) (*Rules, error) {
	return runRunner(ctx, url, name, func(js jetstream.JetStream, cl *client.Client) (*rulenode.Runner, error) {
		return rulenode.NewDeployedRunner(ctx, js, cl, name, opts...)
	})
}

func runRunner(ctx context.Context, url, name string, newRunner func(jetstream.JetStream, *client.Client) (*rulenode.Runner, error)) (*Rules, error) {
	nc, err := nats.Connect(url, nats.Name("rulenode "+name))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	cl, err := client.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	runner, err := newRunner(js, cl)
	if err != nil {
		nc.Close()
		return nil, err
	}
	set := runner.RuleSet()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &Rules{nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- runner.Run(runCtx) }()

	// Ready has no channel to wait on: poll it, bounded by ctx.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for runner.Ready() != nil {
		select {
		case err := <-r.done:
			nc.Close()
			cancel()
			if err == nil {
				err = errors.New("runner stopped before it was ready")
			}
			return nil, fmt.Errorf("examples: rule set %s: %w", set.Name, err)
		case <-ctx.Done():
			r.Stop()
			return nil, fmt.Errorf("examples: rule set %s not ready: %w", set.Name, ctx.Err())
		case <-tick.C:
		}
	}
	return r, nil
}

// Stop stops the runner (it finishes the events it is working on) and
// returns what Run returned. Calling it again returns the same.
func (r *Rules) Stop() error {
	r.stop.Do(func() {
		r.cancel()
		r.err = <-r.done
		r.nc.Close()
	})
	return r.err
}

// DeadLetters returns the dead letters of rule set ruleSet, oldest first,
// read from the dead-letter stream (none when the stream does not exist).
func DeadLetters(ctx context.Context, js jetstream.JetStream, ruleSet string) ([]rulenode.DeadLetter, error) {
	cons, err := js.OrderedConsumer(ctx, rulenode.DefaultDeadLetterStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{rulenode.DeadLetterSubject(ruleSet, ">")},
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("examples: dead letters: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("examples: dead letters: %w", err)
	}
	var out []rulenode.DeadLetter
	for pending := info.NumPending; pending > 0; {
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("examples: dead letters: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			var d rulenode.DeadLetter
			if err := json.Unmarshal(msg.Data(), &d); err != nil {
				return nil, fmt.Errorf("examples: dead letter on %s: %w", msg.Subject(), err)
			}
			out = append(out, d)
			n++
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("examples: dead letters: %w", err)
		}
		if n == 0 {
			return nil, fmt.Errorf("examples: dead letters: %d pending but none delivered", pending)
		}
		pending -= uint64(n)
	}
	return out, nil
}

package rulenode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

// NewDeployedRunner returns a runner of the deployed rule set name: it
// handles each event with the version whose range holds the event's stream
// sequence (see [Deployment.From]) and picks up new versions as they are
// deployed, without a restart. Every runner of the set, in any process,
// switches at the same sequence, and every event is handled by exactly one
// version. It fails with an error matching [ErrNotDeployed] when the set
// has no version yet.
func NewDeployedRunner(ctx context.Context, js jetstream.JetStream, cl *client.Client, name string, opts ...RunnerOption) (*Runner, error) {
	r := NewRunner(js, cl, nil, opts...)
	reg, err := OpenRegistry(ctx, js, r.o.stream)
	if err != nil {
		return nil, err
	}
	t, err := newVersionTable(ctx, reg, name, r.o.logger)
	if err != nil {
		return nil, err
	}
	r.versions = t
	// The runner's own set names the consumer and holds what does not
	// change between versions; rules come from the table, per event.
	r.set, err = t.latest()
	if err != nil {
		return nil, err
	}
	return r, nil
}

// RuleSet returns the runner's rule set; for a deployed rule set, the
// version that was newest when the runner was made.
func (r *Runner) RuleSet() *RuleSet { return r.set }

// versionTable knows the versions of a deployed rule set and which one
// handles an event. Before it answers for an event it checks the registry
// for a newer version, with a read that starts after the event was
// delivered: a version decided before the delivery is then known, and one
// decided after it starts above the event's sequence (its From is the
// stream's last sequence + 1 at the decision). One read serves every event
// that arrived before it started.
type versionTable struct {
	reg  *Registry
	name string
	log  *slog.Logger

	mu   sync.Mutex
	vers []*Deployment // decided, by version
	sets map[int]*RuleSet
	// stopped is the runner's Run context's Done: waiting for a pending
	// version ends there, so a stopping runner hands its events back.
	stopped <-chan struct{}

	fence fence
}

func newVersionTable(ctx context.Context, reg *Registry, name string, log *slog.Logger) (*versionTable, error) {
	hist, err := reg.History(ctx, name)
	if err != nil {
		return nil, err
	}
	t := &versionTable{reg: reg, name: name, log: log, sets: map[int]*RuleSet{}}
	for _, d := range hist {
		if d.Pending() {
			break // refresh waits for it
		}
		t.vers = append(t.vers, d)
	}
	return t, t.refresh(ctx)
}

// latest returns the newest known version's rules.
func (t *versionTable) latest() (*RuleSet, error) {
	t.mu.Lock()
	d := t.vers[len(t.vers)-1]
	t.mu.Unlock()
	return t.compiled(d)
}

// forSeq returns the rules of the version that handles the event at seq,
// after making sure every version decided before now is known.
func (t *versionTable) forSeq(ctx context.Context, seq uint64) (*RuleSet, error) {
	if err := t.fence.wait(ctx, t.refresh); err != nil {
		return nil, err
	}
	t.mu.Lock()
	// Events below the first version's From are only delivered by a
	// consumer that existed before the first deploy: version 1 takes them.
	i := 0
	for j, d := range t.vers {
		if d.From <= seq {
			i = j
		}
	}
	d := t.vers[i]
	t.mu.Unlock()
	return t.compiled(d)
}

// compiled returns d's rule set, compiling it on first use.
func (t *versionTable) compiled(d *Deployment) (*RuleSet, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if set, ok := t.sets[d.Version]; ok {
		return set, nil
	}
	set, err := d.RuleSet()
	if err != nil {
		return nil, fmt.Errorf("rulenode: version %d of %s: %w", d.Version, d.Name, err)
	}
	t.sets[d.Version] = set
	return set, nil
}

// errStopping is a wait for a pending version cut short by the runner
// stopping: the event is handed back.
var errStopping = errors.New("rulenode: runner stopping while a new version is pending")

// pendingPoll is how often a rule node looks again at a version whose
// switch is being decided (the decider writes it within milliseconds).
const pendingPoll = 20 * time.Millisecond

// refresh reads the versions after the newest known one, waiting for a
// pending one to be decided.
func (t *versionTable) refresh(ctx context.Context) error {
	t.mu.Lock()
	next := 1
	if n := len(t.vers); n > 0 {
		next = t.vers[n-1].Version + 1
	}
	stopped := t.stopped
	t.mu.Unlock()
	waitingSince := time.Time{}
	for {
		d, err := t.reg.Get(ctx, t.name, next)
		if errors.Is(err, ErrNotDeployed) {
			if next == 1 {
				return fmt.Errorf("%w: %s", ErrNotDeployed, t.name)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if d.Pending() {
			if waitingSince.IsZero() {
				waitingSince = time.Now()
			} else if time.Since(waitingSince) > 5*time.Second {
				t.log.WarnContext(ctx, "rule node: waiting for the switch of a new rule-set version to be decided (a deploy cut short is finished by the next storeloop rules deploy or rollback)",
					"ruleSet", t.name, "version", d.Version)
				waitingSince = time.Now()
			}
			tm := time.NewTimer(pendingPoll)
			select {
			case <-ctx.Done():
				tm.Stop()
				return ctx.Err()
			case <-stopped:
				tm.Stop()
				return errStopping
			case <-tm.C:
			}
			continue
		}
		t.mu.Lock()
		t.vers = append(t.vers, d)
		t.mu.Unlock()
		t.log.InfoContext(ctx, "rule node: rule-set version deployed", "ruleSet", t.name, "version", d.Version,
			"from", d.From, "hash", d.Hash)
		next++
		waitingSince = time.Time{}
	}
}

// fence runs a check on behalf of callers such that each caller's answer
// comes from a check that started after the caller arrived; callers that
// arrive while a check runs share the next one.
type fence struct {
	mu      sync.Mutex
	running bool
	started uint64 // number of checks started
	done    uint64 // number of the last check finished
	err     error  // its result
	changed chan struct{}
}

func (f *fence) wait(ctx context.Context, check func(context.Context) error) error {
	f.mu.Lock()
	need := f.started + 1
	for f.done < need {
		if !f.running {
			f.running = true
			f.started++
			n := f.started
			f.mu.Unlock()
			err := check(ctx)
			f.mu.Lock()
			f.running, f.done, f.err = false, n, err
			if f.changed != nil {
				close(f.changed)
				f.changed = nil
			}
			continue
		}
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		f.mu.Lock()
	}
	err := f.err
	f.mu.Unlock()
	return err
}

// bind makes sure the set's consumer exists and covers the subjects of
// every known version, and returns it. A consumer made here starts at the
// newest version's From. An existing consumer keeps its position and
// configuration; only missing subjects are added (deploys add them before
// deciding a switch, so normally none are).
func (t *versionTable) bind(ctx context.Context, r *Runner) (jetstream.Consumer, error) {
	t.mu.Lock()
	vers := slices.Clone(t.vers)
	t.stopped = ctx.Done()
	t.mu.Unlock()
	var subjects []string
	for _, d := range vers {
		set, err := t.compiled(d)
		if err != nil {
			return nil, err
		}
		subjects = append(subjects, set.Subjects()...)
	}
	if _, err := ensureConsumer(ctx, r.js, r.o.stream, t.name, subjects, vers[len(vers)-1].From, r.o.ackWait); err != nil {
		return nil, err
	}
	cons, err := r.js.Consumer(ctx, r.o.stream, t.name)
	if err != nil {
		return nil, fmt.Errorf("rulenode: consumer %s on %s: %w", t.name, r.o.stream, err)
	}
	cfg := cons.CachedInfo().Config
	r.o.logger.InfoContext(ctx, "rule node: consumer bound", "ruleSet", t.name, "stream", r.o.stream,
		"filters", cfg.FilterSubjects, "versions", len(vers), "version", vers[len(vers)-1].Version,
		"from", vers[len(vers)-1].From, "ackWait", cfg.AckWait)
	return cons, nil
}

// ensureConsumer makes sure rule set name's durable consumer exists and
// its filters cover subjects: it creates it, starting at stream sequence
// start, when missing (created is then true), else adds the filters it
// lacks. A concurrent creation is detected and the existing consumer used.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, stream, name string, subjects []string, start uint64, ackWait time.Duration) (created bool, err error) {
	want := consumerFilters(slices.Clone(subjects))
	for {
		c, err := js.Consumer(ctx, stream, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			cfg := ruleSetConsumer(name, want, ackWait)
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, max(start, 1)
			_, err = js.CreateConsumer(ctx, stream, cfg)
			if errors.Is(err, jetstream.ErrConsumerExists) {
				continue
			}
			if err != nil {
				return false, fmt.Errorf("rulenode: create consumer %s on %s: %w", name, stream, err)
			}
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("rulenode: consumer %s on %s: %w", name, stream, err)
		}
		cfg := c.CachedInfo().Config
		have := cfg.FilterSubjects
		if cfg.FilterSubject != "" {
			have = append(have, cfg.FilterSubject)
		}
		covered := func(s string) bool {
			return slices.ContainsFunc(have, func(h string) bool { return events.FilterCovers(h, s) })
		}
		if !slices.ContainsFunc(want, func(s string) bool { return !covered(s) }) {
			return false, nil
		}
		cfg.FilterSubject, cfg.FilterSubjects = "", consumerFilters(append(slices.Clone(have), want...))
		if _, err := js.UpdateConsumer(ctx, stream, cfg); err != nil {
			return false, fmt.Errorf("rulenode: widen consumer %s on %s: %w", name, stream, err)
		}
		return false, nil
	}
}

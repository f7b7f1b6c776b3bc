package rulenode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// RulesBucket is the JetStream key-value bucket of deployed rule sets: one
// key "<set>.<version>" per version (see [Deployment]). Keys are only ever
// created, and updated once, to record the version's switch sequence.
const RulesBucket = events.RulesBucket

// Deployment is one version of a deployed rule set.
type Deployment struct {
	Name    string `json:"name"`
	Version int    `json:"version"` // 1, 2, …
	// Hash is the hex SHA-256 of Source.
	Hash   string    `json:"hash"`
	Source string    `json:"source"` // the YAML rule file
	By     string    `json:"by"`     // who deployed it
	At     time.Time `json:"at"`
	// From is the first stream sequence the version handles: every event
	// from From on (up to the next version's From) is handled by this
	// version, every event before it by an earlier one. 0 while the
	// switch is being decided (pending): rule nodes wait for it.
	From uint64 `json:"from,omitempty"`
	// RollbackOf is the version whose rules a rollback copied.
	RollbackOf int `json:"rollbackOf,omitempty"`

	rev uint64 // the KV revision read
}

// Pending reports whether the version's switch sequence is not decided yet.
func (d *Deployment) Pending() bool { return d.From == 0 }

// RuleSet compiles the version's rules.
func (d *Deployment) RuleSet() (*RuleSet, error) {
	set, err := Load(strings.NewReader(d.Source), fmt.Sprintf("%s@%d", d.Name, d.Version))
	if err != nil {
		return nil, err
	}
	if set.Name != d.Name {
		return nil, fmt.Errorf("rulenode: version %d of rule set %s names itself %s", d.Version, d.Name, set.Name)
	}
	set.Version = d.Version
	return set, nil
}

func versionKey(name string, v int) string { return name + "." + strconv.Itoa(v) }

// SourceHash is the hash a [Deployment] records of src.
func SourceHash(src []byte) string {
	sum := sha256.Sum256(src)
	return hex.EncodeToString(sum[:])
}

// ErrNotDeployed is a rule set, or a version of it, that was never deployed.
var ErrNotDeployed = events.Errorf(events.CodeNotFound, "rule set not deployed")

// Registry stores the versions of rule sets in [RulesBucket] and decides
// where each takes over (see docs/protocol.md, "Rule-set versions").
type Registry struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	stream string
}

// OpenRegistry binds the rule-set bucket, creating it if missing. stream is
// the event stream the rule sets consume.
func OpenRegistry(ctx context.Context, js jetstream.JetStream, stream string) (*Registry, error) {
	kv, err := js.KeyValue(ctx, RulesBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      RulesBucket,
			Description: "storeloop rule-set versions",
			History:     1,
			Storage:     jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, RulesBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("rulenode: rule-set bucket %s: %w", RulesBucket, err)
	}
	return &Registry{js: js, kv: kv, stream: stream}, nil
}

// Deploy stores src as the next version of the rule set it names, after
// the checks of `storeloop rules lint`: a file that does not load is
// refused with its [LoadErrors], one whose rules form a loop that noLoop
// does not guard with a validation error, and nothing is stored. A file
// identical to the current version is not stored again: Deploy returns
// the current version and unchanged true.
func (g *Registry) Deploy(ctx context.Context, src []byte, by string) (d *Deployment, unchanged bool, err error) {
	set, err := Load(bytes.NewReader(src), "")
	if err != nil {
		return nil, false, err
	}
	var loops []string
	for _, c := range Lint(set) {
		if !c.Guarded() {
			loops = append(loops, c.String())
		}
	}
	if len(loops) > 0 {
		return nil, false, events.Errorf(events.CodeValidation, "rule set %s: rules form a loop not guarded by noLoop: %s", set.Name, strings.Join(loops, "; "))
	}
	hist, err := g.History(ctx, set.Name)
	if err != nil && !errors.Is(err, ErrNotDeployed) {
		return nil, false, err
	}
	if n := len(hist); n > 0 && hist[n-1].Hash == SourceHash(src) {
		cur, err := g.decide(ctx, hist[n-1])
		return cur, true, err
	}
	d, err = g.append(ctx, &Deployment{Name: set.Name, Source: string(src), By: by})
	return d, false, err
}

// Rollback appends a new version of rule set name whose rules are those of
// version v (history is append-only).
func (g *Registry) Rollback(ctx context.Context, name string, v int, by string) (*Deployment, error) {
	old, err := g.Get(ctx, name, v)
	if err != nil {
		return nil, err
	}
	return g.append(ctx, &Deployment{Name: name, Source: old.Source, By: by, RollbackOf: v})
}

// append stores d as the version after the last one and decides its
// switch. The version key is created only if absent, so two concurrent
// deploys never both get version n: the second finds the key taken and
// takes n+1. An earlier version still pending (its deploy was cut short)
// is decided first: versions take over in order.
func (g *Registry) append(ctx context.Context, d *Deployment) (*Deployment, error) {
	for {
		hist, err := g.History(ctx, d.Name)
		if err != nil && !errors.Is(err, ErrNotDeployed) {
			return nil, err
		}
		if n := len(hist); n > 0 && hist[n-1].Pending() {
			if _, err := g.decide(ctx, hist[n-1]); err != nil {
				return nil, err
			}
		}
		d.Version = len(hist) + 1
		d.Hash = SourceHash([]byte(d.Source))
		d.At = time.Now().UTC()
		d.From = 0
		body, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		d.rev, err = g.kv.Create(ctx, versionKey(d.Name, d.Version), body)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // another deploy took this number
		}
		if err != nil {
			return nil, fmt.Errorf("rulenode: store version %d of %s: %w", d.Version, d.Name, err)
		}
		return g.decide(ctx, d)
	}
}

// decide records where pending version d takes over, once for every rule
// node: the set's consumer is made to cover the version's subjects first
// (so that no event of theirs appended from now on is skipped), then From
// becomes the stream's last sequence + 1 — every event that any rule node
// could have handled with the previous version is below it — and is
// written by a revision-checked update: of concurrent deciders, the first
// wins and the others read its From. If the consumer did not exist it is
// created starting at From, and the version handles everything it
// delivers.
func (g *Registry) decide(ctx context.Context, d *Deployment) (*Deployment, error) {
	for d.Pending() {
		hist, err := g.History(ctx, d.Name)
		if err != nil {
			return nil, err
		}
		var subjects []string
		for _, h := range hist {
			if h.Version > d.Version {
				break
			}
			set, err := h.RuleSet()
			if err != nil {
				return nil, err
			}
			subjects = append(subjects, set.Subjects()...)
		}
		last, err := g.lastSeq(ctx)
		if err != nil {
			return nil, err
		}
		created, err := ensureConsumer(ctx, g.js, g.stream, d.Name, subjects, last+1, DefaultAckWait)
		if err != nil {
			return nil, err
		}
		from := last + 1
		if !created {
			if last, err = g.lastSeq(ctx); err != nil {
				return nil, err
			}
			from = last + 1
		}
		next := *d
		next.From = from
		body, err := json.Marshal(&next)
		if err != nil {
			return nil, err
		}
		rev, err := g.kv.Update(ctx, versionKey(d.Name, d.Version), body, d.rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			// Decided by someone else meanwhile: theirs stands.
			if d, err = g.Get(ctx, d.Name, d.Version); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("rulenode: record the switch of %s version %d: %w", d.Name, d.Version, err)
		}
		next.rev = rev
		d = &next
	}
	return d, nil
}

func (g *Registry) lastSeq(ctx context.Context) (uint64, error) {
	s, err := g.js.Stream(ctx, g.stream)
	if err != nil {
		return 0, fmt.Errorf("rulenode: event stream %s: %w", g.stream, err)
	}
	return s.CachedInfo().State.LastSeq, nil
}

// Get returns version v of rule set name, or an error matching
// [ErrNotDeployed].
func (g *Registry) Get(ctx context.Context, name string, v int) (*Deployment, error) {
	if !ruleSetNameRE.MatchString(name) {
		return nil, events.Errorf(events.CodeBadRequest, "%q is not a valid rule-set name", name)
	}
	e, err := g.kv.Get(ctx, versionKey(name, v))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s version %d", ErrNotDeployed, name, v)
	}
	if err != nil {
		return nil, fmt.Errorf("rulenode: rule set %s version %d: %w", name, v, err)
	}
	return decodeDeployment(e)
}

func decodeDeployment(e jetstream.KeyValueEntry) (*Deployment, error) {
	d := &Deployment{}
	if err := json.Unmarshal(e.Value(), d); err != nil {
		return nil, fmt.Errorf("rulenode: %s in %s: %w", e.Key(), RulesBucket, err)
	}
	d.rev = e.Revision()
	return d, nil
}

// History returns the versions of rule set name, oldest first, or an
// error matching [ErrNotDeployed].
func (g *Registry) History(ctx context.Context, name string) ([]*Deployment, error) {
	if !ruleSetNameRE.MatchString(name) {
		return nil, events.Errorf(events.CodeBadRequest, "%q is not a valid rule-set name", name)
	}
	all, err := g.list(ctx, name+".*")
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotDeployed, name)
	}
	return all, nil
}

// Current returns the latest version of every deployed rule set, by name.
func (g *Registry) Current(ctx context.Context) ([]*Deployment, error) {
	all, err := g.list(ctx, ">")
	if err != nil {
		return nil, err
	}
	var out []*Deployment
	for i, d := range all {
		if i+1 == len(all) || all[i+1].Name != d.Name {
			out = append(out, d)
		}
	}
	return out, nil
}

// list returns the versions under filter, by name and version.
func (g *Registry) list(ctx context.Context, filter string) ([]*Deployment, error) {
	w, err := g.kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("rulenode: list %s: %w", RulesBucket, err)
	}
	defer w.Stop()
	var out []*Deployment
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e := <-w.Updates():
			if e == nil { // all current values seen
				slices.SortFunc(out, func(a, b *Deployment) int {
					if c := strings.Compare(a.Name, b.Name); c != 0 {
						return c
					}
					return a.Version - b.Version
				})
				return out, nil
			}
			d, err := decodeDeployment(e)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
	}
}

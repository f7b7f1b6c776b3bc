package rulenode

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

// Write is one command a rule sends for an event, evaluated (values, not
// expressions), as a dry run collects it instead of sending it.
type Write struct {
	RuleID        string             `json:"rule"`
	Path          string             `json:"path"` // the action path (see ActionPath)
	Op            string             `json:"op"`   // insert, update, upsert, delete, tx or publish
	Bucket        string             `json:"bucket,omitempty"`
	Key           any                `json:"key,omitempty"`
	Record        events.Record      `json:"record,omitempty"`
	Changes       events.Record      `json:"changes,omitempty"`
	Increment     map[string]float64 `json:"increment,omitempty"`
	ExpectVersion *int64             `json:"expectVersion,omitempty"`
	Ops           []events.TxOp      `json:"ops,omitempty"`
	Reads         []events.TxRead    `json:"reads,omitempty"`
	Subject       string             `json:"subject,omitempty"`
	Data          json.RawMessage    `json:"data,omitempty"`
}

// RuleError is a rule whose condition or actions failed in a dry run.
type RuleError struct {
	RuleID string
	Err    error
}

// Outcome is what a rule set does with one event.
type Outcome struct {
	Writes []Write
	Failed []RuleError
	// MaxHop is set when the event's hop count reached the set's maxHop:
	// a runner dead-letters it instead of running the rules (Writes would
	// have been theirs).
	MaxHop bool
}

// DryRun evaluates set on ev exactly as a runner does — the same rules
// selected, the same conditions and actions — but sends nothing: every
// write is collected in the outcome. Reads (forEach queries) are answered
// by cl from the store as it is now, not as it was when ev was appended;
// nil cl fails them.
func DryRun(ctx context.Context, set *RuleSet, ev *events.Event, cl *client.Client) Outcome {
	var out Outcome
	e := &evalEvent{ev: ev}
	rules, failed := set.eligible(ctx, e)
	for _, f := range failed {
		out.Failed = append(out.Failed, RuleError{f.ruleID, f.err})
	}
	out.MaxHop = ev.Meta.Hop >= set.maxHop()
	for _, rule := range rules {
		st := &dryStore{cl: cl, ruleID: rule.ID}
		if err := rule.execute(ctx, e, Env{Store: st}); err != nil {
			out.Failed = append(out.Failed, RuleError{rule.ID, err})
		}
		out.Writes = append(out.Writes, st.writes...)
	}
	return out
}

// errNoReader is a dry run's query without a store to read.
var errNoReader = errors.New("rulenode: dry run without a store to read")

// dryStore is the [Store] of a dry run: it records writes and answers
// reads from the store.
type dryStore struct {
	cl     *client.Client
	ruleID string
	writes []Write
}

func (s *dryStore) add(ctx context.Context, w Write) {
	w.RuleID, w.Path = s.ruleID, ActionPath(ctx)
	s.writes = append(s.writes, w)
}

func (s *dryStore) Insert(ctx context.Context, bucket string, rec events.Record) (events.Record, error) {
	s.add(ctx, Write{Op: string(KindInsert), Bucket: bucket, Record: rec})
	return rec, nil
}

func (s *dryStore) Update(ctx context.Context, bucket string, key any, changes events.Record, increment map[string]float64, opts ...WriteOption) (events.Record, error) {
	s.add(ctx, Write{Op: string(KindUpdate), Bucket: bucket, Key: key, Changes: changes, Increment: increment,
		ExpectVersion: ApplyWriteOptions(opts...).ExpectVersion})
	return nil, nil
}

func (s *dryStore) Upsert(ctx context.Context, bucket string, key any, rec events.Record, increment map[string]float64) (events.Record, error) {
	s.add(ctx, Write{Op: string(KindUpsert), Bucket: bucket, Key: key, Record: rec, Increment: increment})
	return rec, nil
}

func (s *dryStore) Delete(ctx context.Context, bucket string, key any, opts ...WriteOption) (bool, error) {
	s.add(ctx, Write{Op: string(KindDelete), Bucket: bucket, Key: key, ExpectVersion: ApplyWriteOptions(opts...).ExpectVersion})
	return true, nil
}

func (s *dryStore) Tx(ctx context.Context, ops []events.TxOp, reads ...events.TxRead) ([]any, error) {
	s.add(ctx, Write{Op: string(KindTx), Ops: ops, Reads: reads})
	return make([]any, len(ops)), nil
}

func (s *dryStore) Query(ctx context.Context, bucket string, where events.Where) ([]events.Record, error) {
	if s.cl == nil {
		return nil, errNoReader
	}
	return s.cl.Bucket(bucket).Where(ctx, where)
}

func (s *dryStore) Publish(ctx context.Context, subject string, data []byte) error {
	if err := validPublishSubject(subject); err != nil {
		return err
	}
	s.add(ctx, Write{Op: string(KindPublish), Subject: subject, Data: data})
	return nil
}

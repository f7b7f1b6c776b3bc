package rulenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	"go.yaml.in/yaml/v3"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

// ShadowRange selects the recorded events of a shadow run: the last Last
// events the rule sets' subjects match, or, with From > 0, those from
// stream sequence From on.
type ShadowRange struct {
	Last int
	From uint64
}

// ShadowEvent is one recorded event with what the deployed version that
// handled it does with it and what the candidate would do.
type ShadowEvent struct {
	Event     *events.Event
	Subject   string
	Version   int // the deployed version that handled it; 0: none deployed
	Current   Outcome
	Candidate Outcome
	// Written holds, for each of Current's writes (by index), the stream
	// sequence of the event it wrote, found by its command id in the
	// stream; 0 when no event in the stream has it (not written, or a
	// publish).
	Written []uint64
	// Gained and Lost are the candidate's writes the current version does
	// not make, and the current version's the candidate does not make.
	Gained, Lost []Write
	// FailuresDiffer is set when the rules that fail differ.
	FailuresDiffer bool
}

// Differs reports whether the candidate does something else with the event.
func (e *ShadowEvent) Differs() bool {
	return len(e.Gained) > 0 || len(e.Lost) > 0 || e.FailuresDiffer
}

// ShadowReport is the result of [Shadow].
type ShadowReport struct {
	Name    string
	Current *Deployment // the newest deployed version; nil if none
	Events  []*ShadowEvent
	// Rules of the candidate not in the current version, the reverse, and
	// in both with another definition.
	RulesAdded, RulesRemoved, RulesChanged []string
	Gained, Lost                           int // writes, over all events
}

// Differs reports whether the candidate's writes differ on some event.
func (r *ShadowReport) Differs() bool {
	return slices.ContainsFunc(r.Events, (*ShadowEvent).Differs)
}

// Shadow evaluates candidate (loaded from src) on recorded events without
// writing anything, next to the deployed versions of the rule set of the
// same name, each event with the version that handled it. Both run
// through [DryRun]: reads are answered from the store as it is now. The
// events are those of the stream, read once, that the subjects of the
// candidate or of the current version match, selected by rng.
func Shadow(ctx context.Context, cl *client.Client, reg *Registry, candidate *RuleSet, src []byte, rng ShadowRange) (*ShadowReport, error) {
	rep := &ShadowReport{Name: candidate.Name}
	hist, err := reg.History(ctx, candidate.Name)
	if err != nil && !errors.Is(err, ErrNotDeployed) {
		return nil, err
	}
	var decided []*Deployment
	for _, d := range hist {
		if !d.Pending() {
			decided = append(decided, d)
		}
	}
	sets := map[int]*RuleSet{}
	filters := candidate.Subjects()
	for _, d := range decided {
		if sets[d.Version], err = d.RuleSet(); err != nil {
			return nil, err
		}
	}
	if n := len(decided); n > 0 {
		rep.Current = decided[n-1]
		filters = append(filters, sets[rep.Current.Version].Subjects()...)
		rep.RulesAdded, rep.RulesRemoved, rep.RulesChanged, err = diffRules([]byte(rep.Current.Source), src)
		if err != nil {
			return nil, err
		}
	} else {
		for _, r := range candidate.Rules {
			rep.RulesAdded = append(rep.RulesAdded, r.ID)
		}
	}

	// One read of the stream: the selected events, and every command id of
	// this rule set that made an event.
	written := map[string]uint64{}
	var picked []*events.Event
	prefix := candidate.Name + "/"
	err = cl.History(ctx, "", func(ev *events.Event, _ nats.Header) error {
		if id := ev.Meta.CommandID; strings.HasPrefix(id, prefix) {
			id, _, _ = strings.Cut(id, retrySep)
			if _, ok := written[id]; !ok {
				written[id] = ev.Meta.Seq
			}
		}
		subject := eventSubject(ev)
		if !slices.ContainsFunc(filters, func(f string) bool { return events.FilterCovers(f, subject) }) ||
			rng.From > 0 && ev.Meta.Seq < rng.From {
			return nil
		}
		picked = append(picked, ev)
		if rng.From == 0 && len(picked) > rng.Last {
			picked = picked[1:]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	for _, ev := range picked {
		se := &ShadowEvent{Event: ev, Subject: eventSubject(ev)}
		if len(decided) > 0 {
			d := decided[0]
			for _, v := range decided {
				if v.From <= ev.Meta.Seq {
					d = v
				}
			}
			se.Version = d.Version
			se.Current = DryRun(ctx, sets[d.Version], ev, cl)
		}
		se.Candidate = DryRun(ctx, candidate, ev, cl)
		for _, w := range se.Current.Writes {
			se.Written = append(se.Written, written[CommandID(candidate.Name, w.RuleID, ev.Meta.Seq, w.Path)])
		}
		se.Gained = missing(se.Candidate.Writes, se.Current.Writes)
		se.Lost = missing(se.Current.Writes, se.Candidate.Writes)
		se.FailuresDiffer = !slices.Equal(failedRules(se.Current), failedRules(se.Candidate))
		rep.Gained += len(se.Gained)
		rep.Lost += len(se.Lost)
		rep.Events = append(rep.Events, se)
	}
	return rep, nil
}

// missing returns the writes of a that b does not have (as a multiset).
func missing(a, b []Write) []Write {
	have := map[string]int{}
	for _, w := range b {
		have[w.String()]++
	}
	var out []Write
	for _, w := range a {
		if k := w.String(); have[k] > 0 {
			have[k]--
		} else {
			out = append(out, w)
		}
	}
	return out
}

func failedRules(o Outcome) []string {
	ids := make([]string, len(o.Failed))
	for i, f := range o.Failed {
		ids[i] = f.RuleID
	}
	sort.Strings(ids)
	return ids
}

// String is the write on one line: rule and action path, then the
// command with its evaluated values as JSON.
func (w Write) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s %s", w.RuleID, w.Path, w.Op)
	if w.Op == string(KindPublish) {
		fmt.Fprintf(&b, " %s %s", w.Subject, w.Data)
		return b.String()
	}
	if w.Bucket != "" {
		b.WriteString(" " + w.Bucket)
	}
	field := func(name string, v any) {
		j, err := json.Marshal(v)
		if err != nil {
			j = []byte(fmt.Sprintf("%q", fmt.Sprint(v)))
		}
		fmt.Fprintf(&b, " %s=%s", name, j)
	}
	if w.Key != nil {
		field("key", w.Key)
	}
	if w.Record != nil {
		field("record", w.Record)
	}
	if w.Changes != nil {
		field("changes", w.Changes)
	}
	if w.Increment != nil {
		field("increment", w.Increment)
	}
	if w.ExpectVersion != nil {
		field("expectVersion", *w.ExpectVersion)
	}
	if w.Ops != nil {
		field("ops", w.Ops)
	}
	if w.Reads != nil {
		field("reads", w.Reads)
	}
	return b.String()
}

// diffRules compares the rules of two rule files by id: added to b,
// removed from a, and present in both with another definition.
func diffRules(a, b []byte) (added, removed, changed []string, err error) {
	ra, err := rulesByID(a)
	if err != nil {
		return nil, nil, nil, err
	}
	rb, err := rulesByID(b)
	if err != nil {
		return nil, nil, nil, err
	}
	for id, def := range rb {
		old, ok := ra[id]
		switch {
		case !ok:
			added = append(added, id)
		case old != def:
			changed = append(changed, id)
		}
	}
	for id := range ra {
		if _, ok := rb[id]; !ok {
			removed = append(removed, id)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	sort.Strings(changed)
	return added, removed, changed, nil
}

// rulesByID maps each rule's id to its definition as canonical JSON, so
// that formatting and key order do not count as a change.
func rulesByID(src []byte) (map[string]string, error) {
	var f struct {
		Rules []map[string]any `yaml:"rules"`
	}
	if err := yaml.Unmarshal(src, &f); err != nil {
		return nil, fmt.Errorf("rulenode: compare rules: %w", err)
	}
	out := make(map[string]string, len(f.Rules))
	for _, r := range f.Rules {
		id, _ := r["id"].(string)
		j, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("rulenode: compare rule %q: %w", id, err)
		}
		out[id] = string(j)
	}
	return out, nil
}

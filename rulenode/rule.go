package rulenode

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"github.com/storeloop/storeloop/events"
)

// DefaultMaxHop is the MaxHop of a rule set that does not set one.
const DefaultMaxHop = 16

// Caps on a rule set, against hostile or runaway files.
const (
	MaxHopLimit     = 1000
	MaxRules        = 1000
	MaxActions      = 100 // per rule, nested actions included
	MaxForEachDepth = 4
	MaxFileSize     = 1 << 20
)

// RuleSet is a named list of rules. Its name is the durable consumer name:
// every rule node running a set of the same name shares the work.
type RuleSet struct {
	Name string
	// MaxHop stops loops: an event whose hop count is MaxHop or more is
	// not acted on (the runner dead-letters it, reason max_hop).
	MaxHop int
	// Budget applies to every rule that does not set the field itself.
	Budget Budget
	Rules  []*Rule
	// File is the file the set was loaded from, if any.
	File string
	// Version is the deployed version the set is (see [Deployment]); 0
	// for a set from a file or Go.
	Version int
}

// HandlerFunc is the body of a rule written in Go. It sees the event and an
// Env whose store stamps each call with a deterministic action path (the
// ordinal of the call), so a handler that makes the same calls in the same
// order for the same event is as idempotent as a YAML rule.
type HandlerFunc func(ctx context.Context, ev *events.Event, env *Env) error

// Env is what a rule's actions run against.
type Env struct {
	Store  Store
	Logger *slog.Logger
}

// Rule reacts to events on the subjects of On for which When holds, by
// running its actions (Then) or, for a Go rule, its Handler.
type Rule struct {
	ID string
	// On holds NATS subject filters: "*" matches one token, ">" the rest.
	On []string
	// When is a CEL condition over event; empty means always.
	When string
	// NoLoop makes the rule ignore events caused by its own writes
	// (meta.ruleId equal to its id).
	NoLoop bool
	// Then are the actions of a YAML rule, compiled by Load.
	Then []*Action
	// Handler is the body of a Go rule, instead of Then.
	Handler HandlerFunc
	// Writes declares, for Lint, the event subjects a Go handler can
	// cause (filters allowed). YAML rules' writes are derived from Then.
	Writes []string
	// Budget caps the rule's writes; a zero field takes the set's.
	Budget Budget
	// Temporal, when set, triggers the rule over time instead of on each
	// event (On is then the union of its steps' filters).
	Temporal *Temporal

	when *program
}

var (
	ruleSetNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	ruleIDRE      = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
)

// NewRuleSet returns a rule set of Go rules (or an empty set to Add to).
func NewRuleSet(name string, rules ...*Rule) (*RuleSet, error) {
	if !ruleSetNameRE.MatchString(name) {
		return nil, LoadErrors{{Field: "name", Reason: fmt.Sprintf("%q is not a valid rule-set name (1-64 of A-Z a-z 0-9 _ -)", name)}}
	}
	rs := &RuleSet{Name: name, MaxHop: DefaultMaxHop}
	if err := rs.Add(rules...); err != nil {
		return nil, err
	}
	return rs, nil
}

// Add validates Go rules (ids, subject filters, the When condition, a
// Handler) and appends them to the set.
func (rs *RuleSet) Add(rules ...*Rule) error {
	var errs LoadErrors
	seen := map[string]bool{}
	for _, r := range rs.Rules {
		seen[r.ID] = true
	}
	for _, r := range rules {
		fail := func(field, format string, args ...any) {
			errs = append(errs, &LoadError{File: rs.File, RuleID: r.ID, Field: field, Reason: fmt.Sprintf(format, args...)})
		}
		switch {
		case !ruleIDRE.MatchString(r.ID):
			fail("id", "%q is not a valid rule id (1-128 of A-Z a-z 0-9 _ . : -)", r.ID)
		case seen[r.ID]:
			fail("id", "duplicate rule id %q", r.ID)
		}
		seen[r.ID] = true
		if len(r.On) == 0 {
			fail("on", "at least one subject filter is required")
		}
		for _, f := range r.On {
			if err := validFilter(f); err != nil {
				fail("on", "%v", err)
			}
		}
		for _, f := range r.Writes {
			if err := validFilter(f); err != nil {
				fail("writes", "%v", err)
			}
		}
		if r.Handler == nil || len(r.Then) != 0 {
			fail("handler", "a Go rule needs a Handler and no Then actions")
		}
		if r.When != "" && r.when == nil {
			p, err := compileExpr(rootScope(), r.When, true)
			if err != nil {
				fail("when", "%v", err)
			}
			r.when = p
		}
	}
	if len(errs) > 0 {
		return errs
	}
	rs.Rules = append(rs.Rules, rules...)
	return nil
}

// Eligible reports whether the rule acts on ev: false for a NoLoop rule's
// own writes, else the value of When. Evaluation failures are *EvalError.
func (r *Rule) Eligible(ctx context.Context, ev *events.Event) (bool, error) {
	return r.eligible(ctx, &evalEvent{ev: ev})
}

func (r *Rule) eligible(ctx context.Context, e *evalEvent) (bool, error) {
	if r.NoLoop && e.ev.Meta.RuleID == r.ID {
		return false, nil
	}
	if r.when == nil {
		return true, nil
	}
	vars, err := e.activation()
	if err != nil {
		return false, &EvalError{RuleID: r.ID, Expr: r.When, Err: err}
	}
	ok, err := r.when.evalBool(ctx, vars)
	if err != nil {
		return false, &EvalError{RuleID: r.ID, Expr: r.When, Err: err}
	}
	return ok, nil
}

// Match returns the rules with a filter matching subject, in set order.
func (rs *RuleSet) Match(subject string) []*Rule {
	var out []*Rule
	for _, r := range rs.Rules {
		if slices.ContainsFunc(r.On, func(f string) bool { return events.FilterCovers(f, subject) }) {
			out = append(out, r)
		}
	}
	return out
}

// Subjects returns the filter subjects for the set's consumer: the union
// of the rules' filters without duplicates or filters another one covers,
// sorted. JetStream refuses overlapping filters on one consumer, so two
// filters that overlap without one covering the other (bucket.*.updated,
// bucket.orders.*) are replaced by the narrowest filter covering both
// (bucket.*.*); Match still routes each event to the rules that asked.
func (rs *RuleSet) Subjects() []string {
	var fs []string
	for _, r := range rs.Rules {
		fs = append(fs, r.On...)
	}
	return consumerFilters(fs)
}

// consumerFilters returns filters a consumer accepts that cover fs (see
// [RuleSet.Subjects]).
func consumerFilters(fs []string) []string {
	for {
		fs = dropCovered(fs)
		i, j, ok := overlapping(fs)
		if !ok {
			break
		}
		fs = append(fs, joinFilters(fs[i], fs[j]))
	}
	slices.Sort(fs)
	return fs
}

// dropCovered removes duplicates and filters covered by another.
func dropCovered(fs []string) []string {
	var out []string
	for i, f := range fs {
		covered := false
		for j, g := range fs {
			if i != j && events.FilterCovers(g, f) && (g != f || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, f)
		}
	}
	return out
}

func overlapping(fs []string) (int, int, bool) {
	for i := range fs {
		for j := i + 1; j < len(fs); j++ {
			if filtersOverlap(fs[i], fs[j]) {
				return i, j, true
			}
		}
	}
	return 0, 0, false
}

// validFilter checks a NATS subject filter: non-empty tokens without
// whitespace, wildcards only as whole tokens, ">" only last.
func validFilter(f string) error {
	if f == "" || len(f) > 256 {
		return fmt.Errorf("subject filter %q must be 1-256 bytes", f)
	}
	toks := strings.Split(f, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("subject filter %q has an empty token", f)
		case strings.ContainsAny(t, " \t\r\n"):
			return fmt.Errorf("subject filter %q contains whitespace", f)
		case t == ">" && i != len(toks)-1:
			return fmt.Errorf("subject filter %q has '>' before the last token", f)
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return fmt.Errorf("subject filter %q has a wildcard inside a token", f)
		}
	}
	return nil
}

// validSubject checks a subject to publish on: a filter without wildcards.
func validSubject(s string) error {
	if err := validFilter(s); err != nil {
		return err
	}
	if strings.ContainsAny(s, "*>") {
		return fmt.Errorf("subject %q contains a wildcard", s)
	}
	return nil
}

// filtersOverlap reports whether some subject matches both filters.
func filtersOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		if at[i] == ">" || bt[i] == ">" {
			return true
		}
		if at[i] != "*" && bt[i] != "*" && at[i] != bt[i] {
			return false
		}
	}
	return len(at) == len(bt)
}

// joinFilters returns the narrowest filter covering two overlapping ones.
func joinFilters(a, b string) string {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	var out []string
	for i := 0; ; i++ {
		if i == len(at) && i == len(bt) {
			break
		}
		if i == len(at) || i == len(bt) || at[i] == ">" || bt[i] == ">" {
			out = append(out, ">")
			break
		}
		if at[i] == bt[i] {
			out = append(out, at[i])
		} else {
			out = append(out, "*")
		}
	}
	return strings.Join(out, ".")
}

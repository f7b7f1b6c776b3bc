package rulenode

import (
	"fmt"
	"slices"

	"github.com/storeloop/storeloop/events"
)

// Needs is what the actions of a YAML rule set can send, read from the
// rules (least privilege: `storeloop auth user --rules`).
type Needs struct {
	// Commands are the bucket-scoped command subjects below the command
	// prefix, sorted: "<op>.<bucket>" for a write, "query.<bucket>" for a
	// forEach, "tx.<b1>.<b2>..." for a tx (its buckets sorted, see
	// [events.ScopedName]).
	Commands []string
	// Publish are the subjects of publish actions.
	Publish []string
}

// Needs derives what rs's actions can send. Buckets are literal in YAML
// rules, so every command is known; a Go rule, whose handler may send
// anything, or a publish action whose subject is an expression are
// refused (an error naming the rule), since no subject list would cover
// them.
func (rs *RuleSet) Needs() (Needs, error) {
	var n Needs
	for _, r := range rs.Rules {
		if r.Handler != nil {
			return Needs{}, fmt.Errorf("rulenode: rule %q is a Go rule: the commands of its handler cannot be read from the rules", r.ID)
		}
		if err := n.actions(r, r.Then); err != nil {
			return Needs{}, err
		}
	}
	slices.Sort(n.Commands)
	n.Commands = slices.Compact(n.Commands)
	slices.Sort(n.Publish)
	n.Publish = slices.Compact(n.Publish)
	return n, nil
}

func (n *Needs) actions(r *Rule, as []*Action) error {
	for _, a := range as {
		switch a.Kind {
		case KindInsert, KindUpdate, KindUpsert, KindDelete:
			n.Commands = append(n.Commands, events.ScopedName(string(a.Kind), a.Bucket))
		case KindForEach:
			n.Commands = append(n.Commands, events.ScopedName(events.CmdQuery, a.Bucket))
			if err := n.actions(r, a.Do); err != nil {
				return err
			}
		case KindTx:
			if err := n.tx(r, a); err != nil {
				return err
			}
		case KindPublish:
			s, ok := literal(a.Subject)
			subject, isString := s.(string)
			if !ok || !isString {
				return fmt.Errorf("rulenode: rule %q line %d: the publish subject is an expression: the subjects it may take cannot be read from the rules", r.ID, a.Line)
			}
			n.Publish = append(n.Publish, subject)
		}
	}
	return nil
}

// maxTxForEach bounds the forEach ops of a tx: each may have items or
// not, 2^n subjects.
const maxTxForEach = 8

// tx adds the subjects tx action a can be sent on. Its subject names the
// buckets its ops touch when it is sent; the buckets a forEach writes are
// touched only when it has items, so there is one subject for each set of
// forEach ops with items (a tx without ops is not sent).
func (n *Needs) tx(r *Rule, a *Action) error {
	var fixed []string
	for _, rd := range a.Reads {
		fixed = append(fixed, rd.Bucket)
	}
	var groups [][]string
	n.txOps(a.Ops, &fixed, &groups)
	if len(groups) > maxTxForEach {
		return fmt.Errorf("rulenode: rule %q line %d: the tx has %d forEach ops, at most %d can be scoped",
			r.ID, a.Line, len(groups), maxTxForEach)
	}
	for mask := range 1 << len(groups) {
		buckets := slices.Clone(fixed)
		for i, g := range groups {
			if mask&(1<<i) != 0 {
				buckets = append(buckets, g...)
			}
		}
		if len(buckets) == 0 {
			continue
		}
		n.Commands = append(n.Commands, events.ScopedName(events.CmdTx, buckets...))
	}
	return nil
}

// txOps adds to *buckets the buckets the ops of a tx always write, one
// group to *groups per forEach (the buckets its own ops write), and to n
// the forEach queries, sent on their own before the tx.
func (n *Needs) txOps(ops []*Action, buckets *[]string, groups *[][]string) {
	for _, op := range ops {
		if op.Kind != KindForEach {
			*buckets = append(*buckets, op.Bucket)
			continue
		}
		n.Commands = append(n.Commands, events.ScopedName(events.CmdQuery, op.Bucket))
		var own []string
		n.txOps(op.Do, &own, groups)
		*groups = append(*groups, own)
	}
}

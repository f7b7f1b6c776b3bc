package rulenode

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// matchScope is the scope of a temporal rule's when and then: event and
// the matched events.
var matchScope = func() *scope {
	sc, err := rootScope().with(MatchVar)
	if err != nil {
		panic(err)
	}
	return sc
}()

// trigger reads the temporal trigger of a rule (fields f of node n), or
// returns nil when it has none.
func (l *loader) trigger(n *yaml.Node, f map[string]*yaml.Node, base string) *Temporal {
	var kind TemporalKind
	var tn *yaml.Node
	for _, k := range []TemporalKind{TemporalAbsence, TemporalCount, TemporalSequence} {
		if v := f[string(k)]; v != nil {
			if tn != nil {
				l.errf(v, join(base, string(k)), "a rule has one trigger: %s and %s exclude each other", kind, k)
				continue
			}
			kind, tn = k, v
		}
	}
	if tn == nil {
		return nil
	}
	if on := f["on"]; on != nil {
		l.errf(on, join(base, "on"), "a rule with a %s trigger has no on: its steps say which events it sees", kind)
	}
	field := join(base, string(kind))
	t := &Temporal{Kind: kind}
	var tf map[string]*yaml.Node
	switch kind {
	case TemporalAbsence:
		if tf = l.fields(tn, field, "after", "expect", "key", "within"); tf == nil {
			return nil
		}
		for _, name := range []string{"after", "expect"} {
			if sn := tf[name]; sn == nil {
				l.errf(tn, join(field, name), "required")
			} else {
				t.Steps = append(t.Steps, l.step(sn, join(field, name)))
			}
		}
	case TemporalCount:
		if tf = l.fields(tn, field, "on", "when", "key", "atLeast", "within"); tf == nil {
			return nil
		}
		t.Steps = []*Step{l.stepFields(tn, tf, field)}
		if an := tf["atLeast"]; an == nil {
			l.errf(tn, join(field, "atLeast"), "required")
		} else if an.Kind != yaml.ScalarNode || an.ShortTag() != "!!int" || an.Decode(&t.AtLeast) != nil || t.AtLeast < 1 || t.AtLeast > MaxCountAtLeast {
			l.errf(an, join(field, "atLeast"), "want a whole number from 1 to %d", MaxCountAtLeast)
		}
	case TemporalSequence:
		if tf = l.fields(tn, field, "steps", "key", "within"); tf == nil {
			return nil
		}
		sn := tf["steps"]
		switch {
		case sn == nil:
			l.errf(tn, join(field, "steps"), "required")
		case sn.Kind != yaml.SequenceNode || len(sn.Content) < 2 || len(sn.Content) > MaxSequenceSteps:
			l.errf(sn, join(field, "steps"), "want a list of 2 to %d steps", MaxSequenceSteps)
		default:
			for i, s := range sn.Content {
				t.Steps = append(t.Steps, l.step(s, index(join(field, "steps"), i)))
			}
		}
	}
	if kn := tf["key"]; kn == nil {
		l.errf(tn, join(field, "key"), "required: the ${} expression that groups events into matches")
	} else if src, ok := l.str(kn, join(field, "key")); ok {
		v, err := compileString(rootScope(), src)
		if err != nil {
			l.errf(kn, join(field, "key"), "%v", err)
		}
		t.Key, t.key = src, v
	}
	if wn := tf["within"]; wn == nil {
		l.errf(tn, join(field, "within"), "required")
	} else if src, ok := l.str(wn, join(field, "within")); ok {
		d, err := time.ParseDuration(src)
		if err != nil || d <= 0 || d > MaxWithin {
			l.errf(wn, join(field, "within"), "want a duration from 1ms to %s (like 2s, 30m), got %q", MaxWithin, src)
		}
		t.Within = d
	}
	return t
}

// step reads a step: a mapping of on and when.
func (l *loader) step(n *yaml.Node, field string) *Step {
	f := l.fields(n, field, "on", "when")
	if f == nil {
		return &Step{}
	}
	return l.stepFields(n, f, field)
}

// stepFields reads the on and when of a step from its fields f.
func (l *loader) stepFields(n *yaml.Node, f map[string]*yaml.Node, field string) *Step {
	s := &Step{}
	if on := f["on"]; on == nil {
		l.errf(n, join(field, "on"), "required")
	} else {
		s.On = l.filters(on, join(field, "on"), true)
	}
	if wn := f["when"]; wn != nil {
		if src, ok := l.str(wn, join(field, "when")); ok {
			p, err := compileExpr(rootScope(), src, true)
			if err != nil {
				l.errf(wn, join(field, "when"), "%v", err)
			}
			s.When, s.when = src, p
		}
	}
	return s
}

package rulenode

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/storeloop/storeloop/events"
)

func TestFilterRelations(t *testing.T) {
	tests := []struct {
		a, b             string
		covers, overlaps bool
	}{
		{"bucket.>", "bucket.orders.*", true, true},
		{"bucket.*.*", "bucket.orders.updated", true, true},
		{"bucket.orders.*", "bucket.*.*", false, true},
		{"bucket.*.updated", "bucket.orders.*", false, true},
		{"bucket.orders.>", "bucket.users.>", false, false},
		{"a.b", "a.b.>", false, false},
		{"a.*", "a.>", false, true},
		{"a.>", "a.>", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.a+" "+tc.b, func(t *testing.T) {
			if got := events.FilterCovers(tc.a, tc.b); got != tc.covers {
				t.Errorf("covers = %v", got)
			}
			if got, rev := filtersOverlap(tc.a, tc.b), filtersOverlap(tc.b, tc.a); got != tc.overlaps || rev != got {
				t.Errorf("overlaps = %v, reversed %v", got, rev)
			}
		})
	}
}

func TestSubjects(t *testing.T) {
	tests := []struct {
		name string
		on   [][]string
		want []string
	}{
		{"duplicates", [][]string{{"bucket.orders.updated"}, {"bucket.orders.updated"}}, []string{"bucket.orders.updated"}},
		{"subsumed", [][]string{{"bucket.orders.updated", "bucket.users.deleted"}, {"bucket.orders.*"}},
			[]string{"bucket.orders.*", "bucket.users.deleted"}},
		{"everything under >", [][]string{{"bucket.a.inserted"}, {"bucket.>"}, {"bucket.*.deleted"}}, []string{"bucket.>"}},
		{"overlap without cover is joined", [][]string{{"bucket.*.updated"}, {"bucket.orders.*"}, {"other.x"}},
			[]string{"bucket.*.*", "other.x"}},
		{"disjoint kept", [][]string{{"bucket.b.inserted", "bucket.a.inserted"}}, []string{"bucket.a.inserted", "bucket.b.inserted"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := &RuleSet{}
			for _, on := range tc.on {
				rs.Rules = append(rs.Rules, &Rule{On: on})
			}
			got := rs.Subjects()
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i, a := range got {
				for _, b := range got[i+1:] {
					if filtersOverlap(a, b) {
						t.Fatalf("%s and %s overlap", a, b)
					}
				}
			}
		})
	}
}

func TestMatch(t *testing.T) {
	rs := loadTestdata(t, "cyclic.yaml")
	tests := []struct {
		subject string
		want    []string
	}{
		{"bucket.pongs.inserted", []string{"pong"}},
		{"bucket.pings.updated", []string{"ping"}},
		{"bucket.audit.deleted", []string{"audit"}},
		{"bucket.nothing.updated", nil},
	}
	for _, tc := range tests {
		t.Run(tc.subject, func(t *testing.T) {
			var got []string
			for _, r := range rs.Match(tc.subject) {
				got = append(got, r.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewRuleSetErrors(t *testing.T) {
	h := func(context.Context, *events.Event, *Env) error { return nil }
	tests := []struct {
		name  string
		set   string
		rules []*Rule
		field string
	}{
		{"bad name", "a b", nil, "name"},
		{"bad id", "s", []*Rule{{ID: "a b", On: []string{"x"}, Handler: h}}, "id"},
		{"duplicate id", "s", []*Rule{{ID: "a", On: []string{"x"}, Handler: h}, {ID: "a", On: []string{"y"}, Handler: h}}, "id"},
		{"no filters", "s", []*Rule{{ID: "a", Handler: h}}, "on"},
		{"bad writes", "s", []*Rule{{ID: "a", On: []string{"x"}, Writes: []string{"a..b"}, Handler: h}}, "writes"},
		{"no handler", "s", []*Rule{{ID: "a", On: []string{"x"}}}, "handler"},
		{"bad when", "s", []*Rule{{ID: "a", On: []string{"x"}, When: "1 +", Handler: h}}, "when"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRuleSet(tc.set, tc.rules...)
			var le *LoadError
			if !errors.As(err, &le) || le.Field != tc.field || !errors.Is(err, events.ErrValidation) {
				t.Fatalf("err = %v, want a LoadError on %s", err, tc.field)
			}
		})
	}
}

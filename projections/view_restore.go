package projections

import (
	"fmt"
	"math"
	"reflect"

	"github.com/storeloop/storeloop/events"
)

// A snapshot holds a view's records as the store maintained them, besides
// its definition and its source's records. Decoding computes the view
// again from the restored source (Define) and keeps the snapshot's
// records only if they are what that definition gives: the same groups
// and, in each, the same fields with the same values. Otherwise the
// snapshot is refused whole (DecodeState fails, the store node skips it
// and replays the stream): a view rebuilt from the source alone would
// serve other versions and times than a replay, and a snapshot that
// contradicts itself is not trusted for the rest either.

// aggregateTolerance is the relative difference allowed between a sum or
// an average the snapshot holds and the one computed again: a replay adds
// in stream order, the computation in key order, and fractions round
// differently.
const aggregateTolerance = 1e-9

// checkRestoredView reports how restored, the view records of a snapshot,
// differ from those of view b just computed from its restored source.
func checkRestoredView(b *Bucket, restored map[string]events.Record) error {
	if len(restored) != len(b.records) {
		return fmt.Errorf("%d groups, its source gives %d", len(restored), len(b.records))
	}
	for k, want := range b.records {
		got, ok := restored[k]
		if !ok {
			return fmt.Errorf("group %s is missing, its source gives it", k)
		}
		if err := sameGroup(b.Def.View, got, want); err != nil {
			return fmt.Errorf("group %s: %w", k, err)
		}
	}
	return nil
}

// sameGroup compares a restored view record with the one computed again:
// the group-by field and aggregates exactly (sums and averages within
// aggregateTolerance), the meta fields present as numbers.
func sameGroup(def *events.ViewDef, got, want events.Record) error {
	for _, f := range []string{events.FieldVersion, events.FieldCreatedAt, events.FieldUpdatedAt} {
		if _, ok := got[f].(float64); !ok {
			return fmt.Errorf("meta field %s is not a number", f)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d fields, the definition gives %d", len(got), len(want))
	}
	for name, w := range want {
		if events.IsMetaField(name) {
			continue
		}
		g, ok := got[name]
		if !ok {
			return fmt.Errorf("field %s is missing", name)
		}
		if fn := def.Fields[name].Fn; fn == events.ViewSum || fn == events.ViewAvg {
			if !closeEnough(g, w) {
				return fmt.Errorf("field %s is %v, its source gives %v", name, g, w)
			}
		} else if !reflect.DeepEqual(g, w) {
			return fmt.Errorf("field %s is %v, its source gives %v", name, g, w)
		}
	}
	return nil
}

func closeEnough(got, want any) bool {
	g, ok1 := got.(float64)
	w, ok2 := want.(float64)
	return ok1 && ok2 && (g == w || math.Abs(g-w) <= aggregateTolerance*max(math.Abs(g), math.Abs(w)))
}

package projections

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestIndexEqualAndRange(t *testing.T) {
	ix := NewIndex("v")
	values := map[string]any{
		"k1": 1.0, "k2": 2.0, "k2b": 2.0, "k3": 3.0, "kneg": -5.0, "kzero": math.Copysign(0, -1),
		"ka": "a", "kb": "b", "kb2": "b", "kc": "c", "kempty": "",
		"ktrue": true, "kfalse": false, "knull": nil, "kobj": map[string]any{"x": 1.0},
		"kint": 7, "knan": math.NaN(),
	}
	for k, v := range values {
		ix.Add(v, k)
	}
	cases := []struct {
		name string
		got  []string
		want []string
	}{
		{"equal number", ix.Equal(2.0), []string{"k2", "k2b"}},
		{"equal int value finds float", ix.Equal(7.0), []string{"kint"}},
		{"equal int operand", ix.Equal(7), []string{"kint"}},
		{"equal zero finds negative zero", ix.Equal(0.0), []string{"kzero"}},
		{"equal string", ix.Equal("b"), []string{"kb", "kb2"}},
		{"equal string is not number", ix.Equal("1"), nil},
		{"equal true", ix.Equal(true), []string{"ktrue"}},
		{"equal false", ix.Equal(false), []string{"kfalse"}},
		{"equal null not indexed", ix.Equal(nil), nil},
		{"equal NaN", ix.Equal(math.NaN()), nil},
		{"closed numeric", ix.Range(1.0, 3.0, true, true), []string{"k1", "k2", "k2b", "k3"}},
		{"open numeric", ix.Range(1.0, 3.0, false, false), []string{"k2", "k2b"}},
		{"half-open low", ix.Range(2.0, nil, false, false), []string{"k3", "kint"}},
		{"half-open high", ix.Range(nil, 0.0, false, true), []string{"kneg", "kzero"}},
		{"negative zero bound", ix.Range(math.Copysign(0, -1), nil, false, false), []string{"k1", "k2", "k2b", "k3", "kint"}},
		{"bounds between values", ix.Range(1.5, 2.5, false, false), []string{"k2", "k2b"}},
		{"empty", ix.Range(3.0, 1.0, true, true), nil},
		{"string range", ix.Range("a", "b", false, true), []string{"kb", "kb2"}},
		{"string from empty", ix.Range("", "a", true, true), []string{"ka", "kempty"}},
		{"string open high", ix.Range("b", nil, false, false), []string{"kc"}},
		{"mixed bounds", ix.Range(1.0, "z", true, true), nil},
		{"bool bounds", ix.Range(false, true, true, true), nil},
		{"unbounded", ix.Range(nil, nil, false, false), []string{"k1", "k2", "k2b", "k3", "kneg", "kzero", "kint", "ka", "kb", "kb2", "kc", "kempty"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			slices.Sort(c.got)
			slices.Sort(c.want)
			if !slices.Equal(c.got, c.want) {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}

	for k, v := range values {
		ix.Remove(v, k)
	}
	if got := ix.Range(nil, nil, false, false); len(got) != 0 ||
		len(ix.nums.blocks) != 0 || len(ix.strs.blocks) != 0 || len(ix.bools[0])+len(ix.bools[1]) != 0 {
		t.Errorf("index not empty after removing everything: %v", got)
	}
}

// The blocked sorted set agrees with a plain sorted model under random
// inserts and removes, across many block splits and merges.
func TestSortedSetModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := sortedSet[int]{cmp: cmp.Compare[int]}
	model := map[int]bool{}
	for i := range 20000 {
		v := rng.IntN(4000)
		if rng.IntN(3) == 0 {
			s.remove(v)
			delete(model, v)
		} else {
			s.insert(v)
			model[v] = true
		}
		if i%997 != 0 {
			continue
		}
		lo, hi := rng.IntN(4000), rng.IntN(4000)
		loIncl, hiIncl := rng.IntN(2) == 0, rng.IntN(2) == 0
		var got, want []int
		s.ascend(&lo, func(v int) bool {
			if v == lo && !loIncl {
				return true
			}
			if v > hi || v == hi && !hiIncl {
				return false
			}
			got = append(got, v)
			return true
		})
		for v := range model {
			if (v > lo || loIncl && v == lo) && (v < hi || hiIncl && v == hi) {
				want = append(want, v)
			}
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d range [%d,%d] incl %v/%v: got %v, want %v", i, lo, hi, loIncl, hiIncl, got, want)
		}
		var all []int
		s.ascend(nil, func(v int) bool { all = append(all, v); return true })
		if len(all) != len(model) || !slices.IsSorted(all) {
			t.Fatalf("step %d: %d values, model %d, sorted %v", i, len(all), len(model), slices.IsSorted(all))
		}
		for _, b := range s.blocks {
			if len(b) == 0 || len(b) > 2*blockSize {
				t.Fatalf("step %d: block of %d values", i, len(b))
			}
		}
	}
	if len(s.blocks) < 3 {
		t.Fatalf("only %d blocks: the test did not exercise splits", len(s.blocks))
	}
}

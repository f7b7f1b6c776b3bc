package projections

import (
	"iter"
	"maps"
	"math"
	"slices"

	"github.com/storeloop/storeloop/events"
)

// A capture must not stop the State's owner for a time that grows with
// the records: copying a million-record map at once stopped the store's
// loop for 46 ms to 2.1 s. So a Capture copies each bucket's records a
// slice at a time (Step), on the owner's goroutine between its writes,
// and the buckets note the first change to each key after the capture
// began, with the record it replaced (put and remove call noteChange). A
// key changed before the copy reached it is taken from its note, a key
// added since is left out: the view is the state as it was at
// BeginCapture, whatever was written between the steps.

// Capture is a capture of a State in progress, taken in slices. BeginCapture, Step and
// Abort run on the State's owner goroutine, like its writes; View runs
// anywhere once Step has reported it done.
type Capture struct {
	lastSeq uint64
	slice   int // records a step copies
	buckets []*bucketCapture
	next    int // the bucket being copied
}

// bucketCapture is one bucket's part of a capture.
type bucketCapture struct {
	def     events.BucketDef
	autoinc map[string]float64
	live    *Bucket // detached (nil) once its records are all copied
	// next returns the next slice of records, copied by a range over the
	// bucket's map that pauses between slices (a coroutine: iter.Pull),
	// so that a step costs no more than its slice.
	next   func() ([]keyed, bool)
	stop   func()
	copied [][]keyed
	// before holds the keys changed since the capture began, each with
	// its record then.
	before map[string]prior
}

// keyed is a record with its key.
type keyed struct {
	k string
	r events.Record
}

// prior is a key's record when a capture began.
type prior struct {
	r   events.Record
	had bool
}

// BeginCapture starts a capture of s at its LastSeq whose steps copy
// slice records each. It copies nothing but the buckets' definitions and
// autoincrement marks.
func (s *State) BeginCapture(slice int) *Capture {
	c := &Capture{lastSeq: s.LastSeq, slice: max(slice, 1)}
	for _, b := range s.Buckets() {
		bc := &bucketCapture{def: b.Def, autoinc: maps.Clone(b.autoinc), live: b, before: map[string]prior{}}
		bc.next, bc.stop = iter.Pull(inSlices(b.records, c.slice))
		b.capture = bc
		c.buckets = append(c.buckets, bc)
	}
	return c
}

// inSlices yields the records of m in slices of n, ranging over m once.
func inSlices(m map[string]events.Record, n int) iter.Seq[[]keyed] {
	return func(yield func([]keyed) bool) {
		out := make([]keyed, 0, min(n, len(m)))
		for k, r := range m {
			if out = append(out, keyed{k, r}); len(out) == n {
				if !yield(out) {
					return
				}
				out = make([]keyed, 0, min(n, len(m)))
			}
		}
		if len(out) > 0 {
			yield(out)
		}
	}
}

// Step copies the next slice of records and reports whether the capture
// is done.
func (c *Capture) Step() bool {
	for c.next < len(c.buckets) {
		bc := c.buckets[c.next]
		if part, ok := bc.next(); ok {
			bc.copied = append(bc.copied, part)
			return false
		}
		bc.detach()
		c.next++
	}
	return true
}

// Abort ends an unfinished capture: the buckets stop noting changes.
func (c *Capture) Abort() {
	for _, bc := range c.buckets {
		bc.detach()
	}
	c.next = len(c.buckets)
}

func (bc *bucketCapture) detach() {
	if bc.live == nil {
		return
	}
	bc.stop()
	bc.live.capture = nil
	bc.live, bc.next, bc.stop = nil, nil, nil
}

// noteChange is called by a bucket before it changes the record under k,
// old (had: whether there was one), while a capture copies it.
func (bc *bucketCapture) noteChange(k string, old events.Record, had bool) {
	if _, seen := bc.before[k]; !seen {
		bc.before[k] = prior{old, had}
	}
}

// Changed is the number of keys changed since the capture began whose
// change it noted: records the copy took from its notes, or left out.
func (c *Capture) Changed() int {
	n := 0
	for _, bc := range c.buckets {
		n += len(bc.before)
	}
	return n
}

// View returns the captured state once Step reported it done: the
// records copied, but those changed since the capture began, which are
// as they were then.
func (c *Capture) View() *View {
	v := &View{LastSeq: c.lastSeq, buckets: make([]bucketView, 0, len(c.buckets))}
	for _, bc := range c.buckets {
		n := 0
		for _, part := range bc.copied {
			n += len(part)
		}
		bv := bucketView{def: bc.def, keys: make([]string, 0, n), recs: make([]events.Record, 0, n), autoinc: bc.autoinc}
		for _, part := range bc.copied {
			for _, e := range part {
				if _, changed := bc.before[e.k]; !changed {
					bv.keys, bv.recs = append(bv.keys, e.k), append(bv.recs, e.r)
				}
			}
		}
		for _, k := range slices.Sorted(maps.Keys(bc.before)) {
			if p := bc.before[k]; p.had {
				bv.keys, bv.recs = append(bv.keys, k), append(bv.recs, p.r)
			}
		}
		v.buckets = append(v.buckets, bv)
	}
	return v
}

// Capture returns a view of s at its LastSeq, copied at once: for tests
// and for states no one writes to meanwhile.
func (s *State) Capture() *View {
	c := s.BeginCapture(math.MaxInt)
	for !c.Step() {
	}
	return c.View()
}

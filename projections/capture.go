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

// Capture is a capture of a State in progress. BeginCapture, Step and
// Abort run on the State's owner goroutine, like its writes; View runs
// anywhere once Step has reported it done.
type Capture struct {
	lastSeq uint64
	buckets []*bucketCapture
	next    int // the bucket being copied
}

// bucketCapture is one bucket's part of a capture.
type bucketCapture struct {
	def     events.BucketDef
	autoinc map[string]float64
	live    *Bucket // detached (nil) once its records are all copied
	next    func() (string, events.Record, bool)
	stop    func()
	keys    []string
	recs    []events.Record
	// before holds the keys changed since the capture began, each with
	// its record then.
	before map[string]prior
}

// prior is a key's record when a capture began.
type prior struct {
	r   events.Record
	had bool
}

// BeginCapture starts a capture of s at its LastSeq. It copies nothing
// but the buckets' definitions and autoincrement marks: Step copies the
// records.
func (s *State) BeginCapture() *Capture {
	c := &Capture{lastSeq: s.LastSeq}
	for _, b := range s.Buckets() {
		bc := &bucketCapture{def: b.Def, autoinc: maps.Clone(b.autoinc), live: b,
			keys: make([]string, 0, len(b.records)), recs: make([]events.Record, 0, len(b.records)),
			before: map[string]prior{}}
		bc.next, bc.stop = iter.Pull2(maps.All(b.records))
		b.capture = bc
		c.buckets = append(c.buckets, bc)
	}
	return c
}

// Step copies up to n records and reports whether the capture is done.
func (c *Capture) Step(n int) bool {
	for c.next < len(c.buckets) {
		bc := c.buckets[c.next]
		k, r, ok := bc.next()
		if !ok {
			bc.detach()
			c.next++
			continue
		}
		bc.keys, bc.recs = append(bc.keys, k), append(bc.recs, r)
		if n--; n <= 0 {
			return false
		}
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
		keys, recs := bc.keys, bc.recs
		if len(bc.before) > 0 {
			keys, recs = keys[:0:0], recs[:0:0]
			for i, k := range bc.keys {
				if _, changed := bc.before[k]; !changed {
					keys, recs = append(keys, k), append(recs, bc.recs[i])
				}
			}
			for _, k := range slices.Sorted(maps.Keys(bc.before)) {
				if p := bc.before[k]; p.had {
					keys, recs = append(keys, k), append(recs, p.r)
				}
			}
		}
		v.buckets = append(v.buckets, bucketView{def: bc.def, keys: keys, recs: recs, autoinc: bc.autoinc})
	}
	return v
}

// Capture returns a view of s at its LastSeq, copied at once: for tests
// and for states no one writes to meanwhile.
func (s *State) Capture() *View {
	c := s.BeginCapture()
	c.Step(math.MaxInt)
	return c.View()
}

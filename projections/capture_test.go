package projections

import (
	"encoding/json"
	"maps"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/snapcodec"
)

// stateAt is what a capture must give back: every bucket's records and
// autoincrement marks as they are now.
type stateAt struct {
	seq     uint64
	records map[string]map[string]events.Record
	autoinc map[string]map[string]float64
}

func copyState(s *State) stateAt {
	out := stateAt{seq: s.LastSeq, records: map[string]map[string]events.Record{}, autoinc: map[string]map[string]float64{}}
	for name, b := range s.buckets {
		out.records[name], out.autoinc[name] = maps.Clone(b.records), maps.Clone(b.autoinc)
	}
	return out
}

// wantDecodes fails unless v, encoded and decoded, is want.
func wantDecodes(t *testing.T, v *View, want stateAt) {
	t.Helper()
	w := &snapcodec.Writer{}
	if err := v.Encode(w); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeState(snapcodec.NewReader(w.Buf))
	if err != nil {
		t.Fatal(err)
	}
	if got.LastSeq != want.seq || len(got.buckets) != len(want.records) {
		t.Fatalf("decoded seq %d with %d buckets, want seq %d with %d", got.LastSeq, len(got.buckets), want.seq, len(want.records))
	}
	for name, recs := range want.records {
		b := got.Bucket(name)
		if b == nil || !reflect.DeepEqual(b.records, recs) || !reflect.DeepEqual(b.autoinc, want.autoinc[name]) {
			t.Fatalf("bucket %s decoded differs from the state at the capture", name)
		}
	}
}

// TestCaptureUnderWrites: writes between the steps of a capture —
// updates and deletes of records copied and not yet copied, inserts, a
// delete then an insert of the same key, a reverted write, changes to a
// view through its source — leave the view the state as it was when the
// capture began, and once the capture is done the buckets stop noting.
func TestCaptureUnderWrites(t *testing.T) {
	s := NewState()
	def := ordersDef()
	def.Indexes = []string{"userId"}
	def.Schema["id"] = events.FieldDef{Type: events.TypeNumber, Generated: events.GenAutoincrement}
	mustDefine(t, s, def)
	mustDefine(t, s, statsDef("stats"))
	order := func(id, total int) events.Record {
		return events.Record{"id": float64(id), "userId": "u" + string(rune('a'+id%5)), "total": float64(total), "status": "new",
			events.FieldVersion: 1.0, events.FieldCreatedAt: 1e12, events.FieldUpdatedAt: 1e12 + float64(total)}
	}
	for id := 1; id <= 500; id++ {
		apply(t, s, events.OpInserted, nil, order(id, id))
	}
	s.Settle()
	s.LastSeq = 500
	want := copyState(s)

	c := s.BeginCapture(7)
	rng := rand.New(rand.NewPCG(1, 2))
	next, steps := 501, 0
	for !c.Step() {
		steps++
		for range 4 {
			id := 1 + rng.IntN(next-1)
			old, had := s.Bucket("orders").Get(mustKey(t, float64(id)))
			switch {
			case !had:
				apply(t, s, events.OpInserted, nil, order(id, 7))
			case rng.IntN(3) == 0:
				if err := s.Apply(&events.Event{Type: events.OpDeleted, Bucket: "orders", Key: float64(id), Record: old}); err != nil {
					t.Fatal(err)
				}
			default:
				apply(t, s, events.OpUpdated, old, order(id, rng.IntN(1000)))
			}
		}
		apply(t, s, events.OpInserted, nil, order(next, next))
		next++
		// A write reverted (a transaction's later operation refused).
		old, _ := s.Bucket("orders").Get(mustKey(t, float64(next-1)))
		e := &events.Event{Type: events.OpUpdated, Bucket: "orders", Key: float64(next - 1), OldRecord: old, NewRecord: order(next-1, 1)}
		if err := s.Apply(e); err != nil {
			t.Fatal(err)
		}
		s.Revert(e)
		s.Settle()
		s.LastSeq++
	}
	if steps < 50 {
		t.Fatalf("capture done in %d steps: the writes did not interleave", steps)
	}
	for _, b := range s.buckets {
		if b.capture != nil {
			t.Fatalf("bucket %s still noting changes after the capture", b.Def.Bucket)
		}
	}
	if reflect.DeepEqual(copyState(s).records, want.records) {
		t.Fatal("the writes changed nothing")
	}
	wantDecodes(t, c.View(), want)
}

// TestCaptureAbort: an aborted capture stops the buckets noting changes,
// also a bucket redefined meanwhile; a capture after it is whole.
func TestCaptureAbort(t *testing.T) {
	s, _ := newBucket(t, []string{"v"}, `{"id":1,"v":1}`, `{"id":2,"v":2}`, `{"id":3,"v":3}`)
	c := s.BeginCapture(1)
	if c.Step() {
		t.Fatal("a capture of 3 records done in a step of 1")
	}
	mustDefine(t, s, s.Bucket("b").Def) // the same definition again: a new *Bucket, the same records
	insert(t, s, decodeRecord(t, `{"id":4,"v":4}`))
	c.Abort()
	if s.Bucket("b").capture != nil {
		t.Fatal("bucket still noting changes after the abort")
	}
	insert(t, s, decodeRecord(t, `{"id":5,"v":5}`))
	wantDecodes(t, s.Capture(), copyState(s))
}

// TestDecodeStateRefusesBadSections: a body whose record count, record
// sections or index orders do not agree is refused, never half-read; any
// truncation of a good body is refused too.
func TestDecodeStateRefusesBadSections(t *testing.T) {
	def := events.BucketDef{Bucket: "b", Key: "id", Indexes: []string{"v"}, Schema: map[string]events.FieldDef{}}
	js, _ := json.Marshal(def)
	rec := func(w *snapcodec.Writer, id float64) {
		k, _ := events.KeyString(id)
		w.String(k)
		if err := w.Object(events.Record{"id": id, "v": id}); err != nil {
			t.Fatal(err)
		}
	}
	// body writes a state of one bucket with records 1..n in the given
	// sections (counts per section), junk bytes after the first section,
	// and the index order of v over ords.
	body := func(n int, sections []int, junk int, ords []int) []byte {
		w := &snapcodec.Writer{}
		w.Uvarint(9)
		w.Uvarint(1)
		w.Bytes(js)
		w.Uvarint(0)
		w.Uvarint(uint64(n))
		id := 0
		for i, c := range sections {
			var sec snapcodec.Writer
			for range c {
				id++
				rec(&sec, float64(id))
			}
			if i == 0 {
				sec.Buf = append(sec.Buf, make([]byte, junk)...)
			}
			w.Bytes(sec.Buf)
		}
		var order snapcodec.Writer
		order.Uvarint(uint64(len(ords)))
		for _, o := range ords {
			order.Uvarint(uint64(o))
		}
		order.Uvarint(0) // strings
		order.Uvarint(0) // false
		order.Uvarint(0) // true
		w.Bytes(order.Buf)
		return w.Buf
	}
	n := sectionRecords + 3
	ords := make([]int, n)
	for i := range ords {
		ords[i] = i
	}
	good := body(n, []int{sectionRecords, 3}, 0, ords)
	if s, err := DecodeState(snapcodec.NewReader(good)); err != nil || s.Bucket("b").Len() != n || len(s.Bucket("b").Index("v").Equal(float64(n))) != 1 {
		t.Fatalf("good body: %v", err)
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"junk after a section", body(n, []int{sectionRecords, 3}, 1, ords)},
		{"a section short of records", body(n, []int{sectionRecords - 1, 4}, 0, ords)},
		{"a section missing", body(n, []int{sectionRecords}, 0, ords[:sectionRecords])},
		{"an index order short", body(n, []int{sectionRecords, 3}, 0, ords[1:])},
		{"an index order out of order", body(n, []int{sectionRecords, 3}, 0, append([]int{1, 0}, ords[2:]...))},
	} {
		if _, err := DecodeState(snapcodec.NewReader(tc.body)); err == nil {
			t.Errorf("%s: decoded", tc.name)
		}
	}
	for cut := 0; cut < len(good); cut += 997 {
		if _, err := DecodeState(snapcodec.NewReader(good[:cut])); err == nil {
			t.Errorf("body cut at %d of %d: decoded", cut, len(good))
		}
	}
}

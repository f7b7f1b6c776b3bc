//go:build unix

package projections

import (
	"flag"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/gcpause"
	"github.com/storeloop/storeloop/internal/snapcodec"
)

// snapshotRecords is how many records BenchmarkSnapshotState holds (a
// store of that many inserts): -args -snapshot.records=1000000 gives the
// million-event figure.
var snapshotRecords = flag.Int("snapshot.records", 200_000, "records in BenchmarkSnapshotState's state")

// BenchmarkSnapshotState measures the parts of a snapshot that do not
// touch NATS on snapshotRecords small records with two indexes: the
// capture (the pause of the store's loop), the encoding and the decoding
// with the indexes rebuilt (the bulk of a start from a snapshot).
func BenchmarkSnapshotState(b *testing.B) {
	s := NewState()
	def := events.BucketDef{Bucket: "items", Key: "id", Indexes: []string{"n", "name"}, Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeNumber, Generated: events.GenAutoincrement}, "n": {Type: events.TypeNumber}, "name": {Type: events.TypeString}}}
	s.Define(def)
	now := float64(time.Now().UnixMilli())
	for i := 1; i <= *snapshotRecords; i++ {
		k := float64(i)
		if err := s.Apply(&events.Event{Type: events.OpInserted, Bucket: "items", Key: k, Record: events.Record{
			"id": k, "n": float64(i % 1000), "name": fmt.Sprint("item-", i), events.FieldVersion: 1.0,
			events.FieldCreatedAt: now, events.FieldUpdatedAt: now}}); err != nil {
			b.Fatal(err)
		}
	}
	s.LastSeq = uint64(*snapshotRecords) + 1
	w := &snapcodec.Writer{}
	if err := s.Capture().Encode(w); err != nil {
		b.Fatal(err)
	}
	encoded := w.Buf
	b.Run("capture", func(b *testing.B) {
		for b.Loop() {
			s.Capture()
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/capture")
	})
	// capture/steps is the capture as the store node takes it: slices of
	// 16,384 records (its captureSlice); the longest is the loop's pause.
	b.Run("capture/steps", func(b *testing.B) {
		var longest time.Duration
		for b.Loop() {
			c := s.BeginCapture(16384)
			for done := false; !done; {
				t0 := time.Now()
				done = c.Step()
				longest = max(longest, time.Since(t0))
			}
			c.View()
		}
		b.ReportMetric(float64(longest.Microseconds())/1000, "ms/longest-step")
	})
	b.Run("encode", func(b *testing.B) {
		v := s.Capture()
		for b.Loop() {
			if err := v.Encode(&snapcodec.Writer{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(encoded)), "bytes")
		b.ReportMetric(float64(*snapshotRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	// decode is a start's decoding; gc-off is it with the collector
	// paused as the store node does (gcpause), heap the memory the
	// decoded state holds.
	for _, gcOff := range []bool{false, true} {
		name := "decode"
		if gcOff {
			name = "decode/gc-off"
		}
		b.Run(name, func(b *testing.B) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			t0 := cpuTime()
			var got *State
			for b.Loop() {
				got = nil
				var resume func()
				if gcOff {
					resume = gcpause.Pause(16 * int64(len(encoded)))
				}
				var err error
				got, err = DecodeState(snapcodec.NewReader(encoded))
				if resume != nil {
					resume()
				}
				if err != nil {
					b.Fatal(err)
				}
				if got.Bucket("items").Len() != *snapshotRecords || len(got.Bucket("items").Index("n").Equal(7.0)) != *snapshotRecords/1000 {
					b.Fatal("decoded state differs")
				}
			}
			b.ReportMetric(float64(*snapshotRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric((cpuTime()-t0).Seconds()/float64(b.N), "cpu-s/op")
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(encoded)), "heap/body")
			runtime.KeepAlive(got)
		})
	}
}

// cpuTime is the CPU time the process has used so far, all goroutines
// (the collector's included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

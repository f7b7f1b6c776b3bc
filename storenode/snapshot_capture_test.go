package storenode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/snapcodec"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/projections"
	"github.com/storeloop/storeloop/storenode"
)

// TestSnapshotUnderWrites: a snapshot whose capture is copied a few
// records at a time while writers update, delete and insert records is
// the state at its sequence: decoded, it holds exactly what a fold of
// the stream up to that sequence holds, indexes included.
func TestSnapshotUnderWrites(t *testing.T) {
	ctx := context.Background()
	// The first steps of the capture each wait for more writes
	// acknowledged than there are writers: at least one of them was sent,
	// so staged, after the step before.
	const writers, waitedSteps = 16, 20
	var acked atomic.Int64
	var steps atomic.Int64
	between := func() { // on the snapshot's goroutine: no t.Fatal
		step := steps.Add(1)
		if step > waitedSteps {
			return
		}
		from, deadline := acked.Load(), time.Now().Add(time.Minute)
		for acked.Load() <= from+writers {
			if time.Now().After(deadline) {
				t.Errorf("no writes between steps %d and %d of the capture within a minute", step, step+1)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	var logs lockedBuffer
	st := storetest.StartStore(t, storenode.WithCaptureSteps(4, between),
		storenode.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	items := events.BucketDef{Bucket: "items", Key: "id", Indexes: []string{"n"}, Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeNumber, Required: true}, "n": {Type: events.TypeNumber}}}
	define(t, st.Conn, items)
	const initial = 1000
	for from := 1; from <= initial; from += 500 {
		var tx events.TxRequest
		for id := from; id < from+500; id++ {
			tx.Ops = append(tx.Ops, events.TxOp{Op: "insert", Bucket: "items", Record: events.Record{"id": float64(id), "n": float64(id % 10)}})
		}
		mustCall(t, st.Conn, events.CmdTx, tx, nil)
	}

	// Writers run until the snapshot is taken.
	var next atomic.Int64
	next.Store(initial + 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := float64(1 + rng.Int64N(next.Load()-1))
				cmd, req := events.CmdUpdate, any(events.UpdateRequest{Bucket: "items", Key: id, Changes: events.Record{"n": float64(rng.IntN(10))}})
				switch rng.IntN(4) {
				case 0:
					cmd, req = events.CmdDelete, events.DeleteRequest{Bucket: "items", Key: id}
				case 1:
					cmd, req = events.CmdInsert, events.InsertRequest{Bucket: "items", Record: events.Record{"id": float64(next.Add(1) - 1), "n": 3.0}}
				}
				body, _ := json.Marshal(req)
				data, err := request(st.Conn, cmd, body)
				var r events.Reply
				if err == nil {
					err = json.Unmarshal(data, &r)
				}
				switch {
				case err != nil:
				case r.Error == nil:
					acked.Add(1)
					continue
				case r.Error.Code == events.CodeNotFound: // deleted by the other writer
					continue
				default:
					err = r.Error
				}
				errs <- fmt.Errorf("%s: %w", cmd, err)
				return
			}
		})
	}
	eventually(t, time.Minute, "writes under way", func() bool { return acked.Load() >= 50 })
	before := acked.Load()
	var info events.SnapshotInfo
	mustCall(t, st.Conn, events.CmdSnapshot, struct{}{}, &info)
	during := acked.Load() - before
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if !info.Valid || during == 0 || steps.Load() <= waitedSteps {
		t.Fatalf("snapshot %+v with %d writes acknowledged while it was taken: want a valid one taken under writes in more than %d steps", info, during, waitedSteps)
	}
	// The capture noted records changed between its steps: the case
	// under test happened (and the log says so).
	if m := regexp.MustCompile(`msg="snapshot taken" .*changedMeanwhile=(\d+)`).FindStringSubmatch(logs.String()); m == nil || m[1] == "0" {
		t.Fatalf("no record changed during the capture (log: %v): the writes did not land between its steps", m)
	}

	obj, err := snapshotStore(t, st).GetBytes(ctx, info.Name)
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := bytes.Cut(obj, []byte{'\n'})
	got, err := projections.DecodeState(snapcodec.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	want := foldUpTo(t, st, info.Seq)
	gb, wb := got.Bucket("items"), want.Bucket("items")
	if got.LastSeq != info.Seq || gb.Len() != wb.Len() || gb.Len() == 0 {
		t.Fatalf("snapshot at seq %d holds %d items, the stream up to seq %d %d", got.LastSeq, gb.Len(), info.Seq, wb.Len())
	}
	for id := range next.Load() {
		k, _ := events.KeyString(float64(id))
		g, gok := gb.Get(k)
		w, wok := wb.Get(k)
		if gok != wok || !reflect.DeepEqual(g, w) {
			t.Fatalf("item %d: snapshot %v (%v), stream up to seq %d %v (%v)", id, g, gok, info.Seq, w, wok)
		}
	}
	for n := range 10 {
		g, w := gb.Index("n").Equal(float64(n)), wb.Index("n").Equal(float64(n))
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Fatalf("index n = %d: snapshot %d keys, stream %d", n, len(g), len(w))
		}
	}
}

// lockedBuffer is a log the node writes from its goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// foldUpTo folds the stream's bucket definitions and events up to seq
// into a state: the state at seq.
func foldUpTo(t *testing.T, st *storetest.Store, seq uint64) *projections.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	state := projections.NewState()
	for i := uint64(1); i <= seq; i++ {
		m, err := s.GetMsg(ctx, i)
		if err != nil {
			t.Fatalf("seq %d: %v", i, err)
		}
		if !strings.HasPrefix(m.Subject, events.EventSubjectPrefix+".") && !strings.HasPrefix(m.Subject, events.SchemaSubjectPrefix+".") {
			continue
		}
		dm, err := projections.DecodeMessage(m.Subject, m.Data)
		if err == nil {
			err = state.ApplyDecoded(i, dm)
		}
		if err != nil {
			t.Fatalf("seq %d: %v", i, err)
		}
	}
	return state
}

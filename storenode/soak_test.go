package storenode_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// soakDuration is how long TestSoak runs: 60 s, or STORELOOP_SOAK (a Go
// duration) for a longer run.
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("STORELOOP_SOAK")
	if v == "" {
		return time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("STORELOOP_SOAK=%q: %v", v, err)
	}
	return d
}

// TestSoak sends mixed valid and hostile commands (malformed, oversized,
// huge headers, cap-busting transactions, replies that could not fit) from
// several workers. Each worker owns its keys and keeps a model of them from
// the replies it was given: every reply must arrive, every hostile command
// must be refused with its code and change nothing, and at the end the
// store — live, and rebuilt by a restart from the stream — must equal the
// models, with the heap after GC flat from the warmed-up point to the end.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	duration := soakDuration(t)
	st := storetest.StartStore(t, storenode.WithDedupeBytes(8<<20))
	nc := st.Conn
	define(t, nc, bigDef())

	const workers = 4
	models := make([]*soakWorker, workers)
	var wg sync.WaitGroup
	deadline := time.Now().Add(duration)
	warm := make(chan uint64, 1)
	for w := range workers {
		models[w] = &soakWorker{t: t, nc: nc, base: float64(w * 1000), rng: rand.New(rand.NewPCG(uint64(w), 9)), model: map[float64]events.Record{}}
		wg.Go(func() { models[w].run(deadline) })
	}
	// The heap once the dedupe table has had time to fill to its budget.
	wg.Go(func() {
		time.Sleep(duration / 4) // a point in time to measure at, not a wait for the workers
		warm <- heapAfterGC()
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	end := heapAfterGC()
	start := <-warm
	total := 0
	for _, w := range models {
		total += w.ops
	}
	t.Logf("%d commands in %v; heap after GC %.1f MB warmed up, %.1f MB at the end", total, duration, mb(start), mb(end))
	if end > start+32<<20 {
		t.Errorf("heap after GC grew from %.1f MB to %.1f MB", mb(start), mb(end))
	}
	wantHealthy(t, st)
	if n := st.Node.ReplyFailures(); n != 0 {
		t.Errorf("%d replies failed to send", n)
	}
	for _, w := range models {
		w.check("live")
	}
	live := snapshot(t, nc)
	restartNode(t, st)
	if replayed := snapshot(t, nc); replayed != live {
		t.Fatalf("state after replay differs from the live state")
	}
	for _, w := range models {
		w.check("after replay")
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// soakWorker sends commands on its own keys, base+0 … base+soakKeys-1, and
// keeps what the store said they are.
type soakWorker struct {
	t     *testing.T
	nc    *nats.Conn
	base  float64
	rng   *rand.Rand
	model map[float64]events.Record // acknowledged state; absent = no record
	ops   int
}

const soakKeys = 40

// big100 is the blob of the worker's last key, whose record is 100 KB: a tx
// of twelve increments of it would reply with twelve copies.
var big100 = strings.Repeat("b", 100<<10)

func (w *soakWorker) key() float64 { return w.base + float64(w.rng.IntN(soakKeys-1)) }

func (w *soakWorker) bigKey() float64 { return w.base + soakKeys - 1 }

func (w *soakWorker) run(deadline time.Time) {
	// The big record exists from the start.
	w.write(events.CmdUpsert, events.UpsertRequest{Bucket: "big", Key: w.bigKey(), Record: events.Record{"blob": big100}}, "", nil)
	for time.Now().Before(deadline) && !w.t.Failed() {
		w.ops++
		k := w.key()
		cur := w.model[k]
		switch w.rng.IntN(16) {
		case 0:
			if cur == nil {
				w.write(events.CmdInsert, events.InsertRequest{Bucket: "big", Record: events.Record{"id": k, "n": 0.0}}, "", nil)
			} else {
				w.hostile(events.CmdInsert, events.InsertRequest{Bucket: "big", Record: events.Record{"id": k}}, events.CodeConflict)
			}
		case 1:
			if cur != nil {
				w.write(events.CmdUpdate, events.UpdateRequest{Bucket: "big", Key: k, Increment: map[string]float64{"n": 1}}, "", nil)
			} else {
				w.hostile(events.CmdUpdate, events.UpdateRequest{Bucket: "big", Key: k, Increment: map[string]float64{"n": 1}}, events.CodeNotFound)
			}
		case 2:
			w.write(events.CmdUpsert, events.UpsertRequest{Bucket: "big", Key: k, Record: events.Record{"blob": fmt.Sprint(w.rng.IntN(1000))}, Increment: map[string]float64{"n": 2}}, "", nil)
		case 3:
			w.write(events.CmdDelete, events.DeleteRequest{Bucket: "big", Key: k}, "", nil)
		case 4:
			k2 := w.key()
			w.write(events.CmdTx, events.TxRequest{Ops: []events.TxOp{
				{Op: events.CmdUpsert, Bucket: "big", Key: k, Increment: map[string]float64{"n": 1}},
				{Op: events.CmdUpsert, Bucket: "big", Key: k2, Increment: map[string]float64{"n": 10}},
			}}, "", []float64{k, k2})
		case 5: // a write sent twice with one command id: the same reply, applied once
			id := fmt.Sprintf("soak-%v-%d", w.base, w.ops)
			first := w.write(events.CmdUpsert, events.UpsertRequest{Bucket: "big", Key: k, Increment: map[string]float64{"n": 1}}, id, nil)
			if again := w.send(events.CmdUpsert, events.UpsertRequest{Bucket: "big", Key: k, Increment: map[string]float64{"n": 1}}, events.HeaderCommandID, id); first != nil && string(again) != string(first) {
				w.t.Errorf("retry of %s answered %s, first %s", id, again, first)
			}
		case 6:
			w.checkKey(k, "get")
		case 7:
			w.hostileRaw(events.CmdUpsert, []byte(`{"bucket":"big","key":`), events.CodeBadRequest)
		case 8:
			w.hostileRaw(events.CmdUpsert, []byte(fmt.Sprintf(`{"bucket":"big","key":%v,"increment":{"n":1},"ttl":3}`, k)), events.CodeBadRequest)
		case 9:
			w.hostile(events.CmdUpsert, events.UpsertRequest{Bucket: "big", Key: k, Increment: map[string]float64{"n": 1}}, events.CodeTooLarge,
				events.HeaderCorrelationID, strings.Repeat("c", 100<<10))
		case 10:
			w.hostile(events.CmdUpsert, events.UpsertRequest{Bucket: "big", Key: k, Increment: map[string]float64{"n": 1}}, events.CodeBadRequest,
				events.HeaderHop, "-1")
		case 11:
			reads := make([]events.TxRead, events.MaxTxReads+1)
			for i := range reads {
				reads[i] = events.TxRead{Bucket: "big", Key: k, Version: 1}
			}
			w.hostile(events.CmdTx, events.TxRequest{Ops: []events.TxOp{{Op: events.CmdUpsert, Bucket: "big", Key: k}}, Reads: reads}, events.CodeTooLarge)
		case 12:
			qr := make([]events.TxQueryRead, 14000)
			for i := range qr {
				qr[i] = events.TxQueryRead{Bucket: "big", Where: events.Where{"n": 1.0}, Records: []events.TxRead{}}
			}
			w.hostile(events.CmdTx, events.TxRequest{Ops: []events.TxOp{{Op: events.CmdUpsert, Bucket: "big", Key: k}}, QueryReads: qr}, events.CodeTooLarge)
		case 13:
			w.hostile(events.CmdUpsert, events.UpsertRequest{Bucket: "big", Key: k, Record: events.Record{"blob": strings.Repeat("x", 300<<10)}}, events.CodeValidation)
		case 14:
			ops := make([]events.TxOp, 12)
			for i := range ops {
				ops[i] = events.TxOp{Op: events.CmdUpdate, Bucket: "big", Key: w.bigKey(), Increment: map[string]float64{"n": 1}}
			}
			w.hostile(events.CmdTx, events.TxRequest{Ops: ops}, events.CodeTooLarge, events.HeaderCommandID, fmt.Sprintf("soak-big-%v-%d", w.base, w.ops))
		case 15:
			w.hostileRaw(events.CmdQuery, []byte(`{"bucket":"big","after":"not a cursor"}`), events.CodeBadRequest)
		}
	}
}

// send sends one command and returns the raw reply; a lost reply fails the
// test.
func (w *soakWorker) send(cmd string, req any, hdr ...string) []byte {
	data, ok := req.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(req); err != nil {
			w.t.Errorf("%s: %v", cmd, err)
			return nil
		}
	}
	reply, err := request(w.nc, cmd, data, hdr...)
	if err != nil {
		w.t.Errorf("%s: no reply: %v", cmd, err)
		return nil
	}
	return reply
}

// write sends a valid write and updates the model from its reply: the
// record (or records of a tx, keys in order) it returned. It returns the
// raw reply.
func (w *soakWorker) write(cmd string, req any, id string, txKeys []float64) []byte {
	var hdr []string
	if id != "" {
		hdr = []string{events.HeaderCommandID, id}
	}
	raw := w.send(cmd, req, hdr...)
	if raw == nil {
		return nil
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *events.Error   `json:"error"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || r.Error != nil {
		w.t.Errorf("%s %+v: %s", cmd, req, raw)
		return nil
	}
	switch cmd {
	case events.CmdDelete:
		delete(w.model, req.(events.DeleteRequest).Key.(float64))
	case events.CmdTx:
		var res struct{ Results []events.Record }
		json.Unmarshal(r.Result, &res)
		for i, k := range txKeys {
			w.model[k] = res.Results[i]
		}
	default:
		var rec events.Record
		json.Unmarshal(r.Result, &rec)
		w.model[rec["id"].(float64)] = rec
	}
	return raw
}

// hostile sends a command that must be refused with code.
func (w *soakWorker) hostile(cmd string, req any, code events.Code, hdr ...string) {
	data, err := json.Marshal(req)
	if err != nil {
		w.t.Errorf("%s: %v", cmd, err)
		return
	}
	w.hostileRaw(cmd, data, code, hdr...)
}

func (w *soakWorker) hostileRaw(cmd string, data []byte, code events.Code, hdr ...string) {
	raw := w.send(cmd, data, hdr...)
	if raw == nil {
		return
	}
	var r events.Reply
	if err := json.Unmarshal(raw, &r); err != nil || r.Error == nil || r.Error.Code != code {
		w.t.Errorf("%s %.200s: got %.300s, want error %s", cmd, data, raw, code)
	}
}

// checkKey compares the store's record under k with the model.
func (w *soakWorker) checkKey(k float64, when string) {
	raw := w.send(events.CmdGet, events.GetRequest{Bucket: "big", Key: k})
	if raw == nil {
		return
	}
	want := marshalReplyOf(w.t, w.model[k])
	if string(raw) != want {
		w.t.Errorf("%s: key %v is %.300s, the acknowledged writes say %.300s", when, k, raw, want)
	}
}

// check compares every key of the worker with the model.
func (w *soakWorker) check(when string) {
	for i := range soakKeys {
		w.checkKey(w.base+float64(i), when)
	}
}

// marshalReplyOf is the store's reply to a get of rec.
func marshalReplyOf(t *testing.T, rec events.Record) string {
	if rec == nil {
		return `{"result":null}`
	}
	data, err := json.Marshal(rec)
	if err != nil {
		t.Errorf("encode %v: %v", rec, err)
	}
	return `{"result":` + string(data) + `}`
}

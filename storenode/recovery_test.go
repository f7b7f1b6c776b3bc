package storenode_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/datadir"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/procs"
	"github.com/storeloop/storeloop/storenode"
)

// embeddedNode is a store node on an embedded server configured as the
// daemon configures it (StartEmbedded), for tests that stop the server
// and touch its files between starts.
type embeddedNode struct {
	srv  *server.Server
	nc   *nats.Conn
	node *storenode.Node
	stop func()
}

// startEmbedded starts a server on dir and a node on it. When the node
// fails to start, the server and connection stay up (for the test to look
// at the stream) and the error is returned.
func startEmbedded(t *testing.T, dir string, connOpts []nats.Option, opts ...storenode.Option) (*embeddedNode, error) {
	t.Helper()
	srv, extra, err := storenode.StartEmbedded(storenode.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		return nil, err
	}
	e := &embeddedNode{srv: srv}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			if e.node != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				e.node.Stop(ctx)
			}
			if e.nc != nil {
				e.nc.Close()
			}
			srv.Shutdown()
			srv.WaitForShutdown()
		})
	}
	t.Cleanup(e.stop)
	if e.nc, err = nats.Connect(srv.ClientURL(), connOpts...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts = append(append([]storenode.Option{storenode.WithLogger(slog.New(slog.DiscardHandler))}, extra...), opts...)
	e.node, err = storenode.Start(ctx, e.nc, opts...)
	return e, err
}

func mustStartEmbedded(t *testing.T, dir string, opts ...storenode.Option) *embeddedNode {
	t.Helper()
	e, err := startEmbedded(t, dir, nil, opts...)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return e
}

func blockFile(dir string) string {
	return filepath.Join(dir, "jetstream", "$G", "streams", events.DefaultStream, "msgs", "1.blk")
}

// insertOrders inserts n orders (ids 1..n, one event each) in
// transactions of 100, after the bucket's definition (sequence 1): order
// k is the event at sequence k+1.
func insertOrders(t *testing.T, nc *nats.Conn, n int) {
	t.Helper()
	define(t, nc, ordersDef())
	for i := 0; i < n; i += 100 {
		var ops []events.TxOp
		for j := i; j < min(i+100, n); j++ {
			ops = append(ops, events.TxOp{Op: "insert", Bucket: "orders", Record: events.Record{"userId": fmt.Sprint("u", j%10), "total": float64(j)}})
		}
		mustCall(t, nc, events.CmdTx, events.TxRequest{Ops: ops}, nil)
	}
}

func wantDataLoss(t *testing.T, err error) *storenode.DataLossError {
	t.Helper()
	var loss *storenode.DataLossError
	if !errors.As(err, &loss) {
		t.Fatalf("start: %v, want a *storenode.DataLossError", err)
	}
	return loss
}

// TestDataDirLock: a second embedded server on a data directory is
// refused with the holder named, before it opens anything in it; the
// directory is free again once the first server stopped.
func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	first := mustStartEmbedded(t, dir)
	_, err := startEmbedded(t, dir, nil)
	var inUse *storenode.DataDirInUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("second start: %v, want *storenode.DataDirInUseError", err)
	}
	host, _ := os.Hostname()
	if inUse.Holder.PID != os.Getpid() || inUse.Holder.Host != host || time.Since(inUse.Holder.Started) > time.Minute {
		t.Errorf("holder %+v, want pid %d on %s, started just now", inUse.Holder, os.Getpid(), host)
	}
	if want := fmt.Sprintf("pid %d on %s", os.Getpid(), host); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %q", err, want)
	}
	// The first is unaffected.
	define(t, first.nc, ordersDef())

	// The lock comes before the server touches the directory.
	fresh := t.TempDir()
	held, err := datadir.Acquire(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startEmbedded(t, fresh, nil); !errors.As(err, &inUse) {
		t.Fatalf("start on a held directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(fresh, "jetstream")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused server created its store: %v", err)
	}
	held.Release()

	// A restart in the same process after a stop takes the lock again.
	first.stop()
	again := mustStartEmbedded(t, dir)
	var buckets []map[string]any
	mustCall(t, again.nc, events.CmdBuckets, struct{}{}, &buckets)
	if len(buckets) != 1 {
		t.Errorf("%d buckets after restart, want 1", len(buckets))
	}
}

// TestFlippedByteIsDataLoss is issue 9's reproduction: one byte flipped in
// the middle of the stream's first block. The start fails naming the
// missing sequences; with WithAcceptDataLoss the node serves exactly the
// events left, reports the loss, takes writes, and starts again later
// without the flag (the loss was accepted once).
func TestFlippedByteIsDataLoss(t *testing.T) {
	const orders = 10_000
	dir := t.TempDir()
	e := mustStartEmbedded(t, dir)
	insertOrders(t, e.nc, orders)
	mark := e.node.Status().LastSeq
	if mark != orders+1 {
		t.Fatalf("last sequence %d, want %d", mark, orders+1)
	}
	e.stop()

	blk := blockFile(dir)
	data, err := os.ReadFile(blk)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blk, data, 0o644); err != nil {
		t.Fatal(err)
	}

	refused, err := startEmbedded(t, dir, nil)
	loss := wantDataLoss(t, err)
	refused.stop()
	if len(loss.Missing) == 0 || loss.Mark != mark || loss.Gone {
		t.Fatalf("loss %+v", loss)
	}
	first, last := loss.Missing[0].First, loss.Missing[len(loss.Missing)-1].Last
	if first < 2 || last > mark {
		t.Fatalf("missing %v: outside the orders' sequences 2..%d", loss.Missing, mark)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("missing sequences %d-", first)) || !strings.Contains(msg, fmt.Sprintf("-%d", last)) {
		t.Errorf("error %q does not name the first and last missing sequence", msg)
	}
	t.Logf("lost %d events: %v", storenodeLost(loss.Missing), loss.Missing)

	e, err = startEmbedded(t, dir, nil, storenode.WithAcceptDataLoss())
	if err != nil {
		t.Fatalf("start accepting the loss: %v", err)
	}
	st := e.node.Status()
	if !reflect.DeepEqual(st.LostRanges, loss.Missing) || st.LostEvents != storenodeLost(loss.Missing) {
		t.Errorf("status %+v, want the lost ranges %v", st, loss.Missing)
	}
	// Exactly the orders whose events are left: order k was sequence k+1.
	var count int
	mustCall(t, e.nc, events.CmdCount, events.CountRequest{Bucket: "orders"}, &count)
	if want := orders - int(st.LostEvents); count != want {
		t.Errorf("%d orders, want %d", count, want)
	}
	if got := getRecord(t, e.nc, "orders", float64(first-1)); got != nil {
		t.Errorf("order %d (lost sequence %d) is there: %v", first-1, first, got)
	}
	if got := getRecord(t, e.nc, "orders", float64(first-2)); got == nil {
		t.Errorf("order %d (sequence %d, before the loss) is missing", first-2, first-1)
	}
	var rec events.Record
	mustCall(t, e.nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "after", "total": 1.0}}, &rec)
	e.stop()

	e = mustStartEmbedded(t, dir)
	if got := getRecord(t, e.nc, "orders", rec["id"]); got == nil || got["userId"] != "after" {
		t.Errorf("the write after the loss: %v", got)
	}
	// The hole stays in the stream: it is remembered as accepted.
	if st := e.node.Status(); !reflect.DeepEqual(st.LostRanges, loss.Missing) {
		t.Errorf("status after restart %+v, want the accepted ranges %v", st, loss.Missing)
	}
}

func storenodeLost(rs []events.SeqRange) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Last - r.First + 1
	}
	return n
}

// TestTruncatedStreamIsDataLoss: the stream's block cut in half (what a
// lost tail looks like after a crash without fsync): the stream ends
// before the high-water mark and the start is refused up to the mark.
func TestTruncatedStreamIsDataLoss(t *testing.T) {
	dir := t.TempDir()
	e := mustStartEmbedded(t, dir)
	insertOrders(t, e.nc, 1000)
	mark := e.node.Status().LastSeq
	e.stop()
	blk := blockFile(dir)
	fi, err := os.Stat(blk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(blk, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(filepath.Dir(blk), "index.db")) // the server's own summary would remember the old end

	_, err = startEmbedded(t, dir, nil)
	loss := wantDataLoss(t, err)
	if len(loss.Missing) != 1 || loss.Missing[0].Last != mark || loss.Missing[0].First < 2 || loss.Mark != mark {
		t.Fatalf("loss %+v, want one range ending at the mark %d", loss, mark)
	}
}

// TestDeletedStreamIsDataLoss: a stream deleted from outside is not
// silently recreated empty at the next start.
func TestDeletedStreamIsDataLoss(t *testing.T) {
	dir := t.TempDir()
	e := mustStartEmbedded(t, dir)
	insertOrders(t, e.nc, 10)
	mark := e.node.Status().LastSeq
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, events.DefaultStream); err != nil {
		t.Fatal(err)
	}
	e.stop()

	e, err = startEmbedded(t, dir, nil)
	loss := wantDataLoss(t, err)
	if !loss.Gone || loss.Mark != mark || !strings.Contains(err.Error(), fmt.Sprintf("stream %s is missing", events.DefaultStream)) ||
		!strings.Contains(err.Error(), fmt.Sprint(mark)) {
		t.Fatalf("error %q (%+v), want the stream and the mark %d named", err, loss, mark)
	}
	if js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, events.DefaultStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the refused start created the stream: %v", err)
	}
	e.stop()

	e, err = startEmbedded(t, dir, nil, storenode.WithAcceptDataLoss())
	if err != nil {
		t.Fatal(err)
	}
	if st := e.node.Status(); st.LostEvents != mark || !reflect.DeepEqual(st.LostRanges, []events.SeqRange{{First: 1, Last: mark}}) {
		t.Errorf("status %+v, want %d events lost", st, mark)
	}
	insertOrders(t, e.nc, 1)
	e.stop()
	mustStartEmbedded(t, dir) // the new stream is the one the mark knows
}

// TestSealedStreamRefused: a stream sealed from outside takes no appends
// and cannot be unsealed: the start fails and says so.
func TestSealedStreamRefused(t *testing.T) {
	dir := t.TempDir()
	e := mustStartEmbedded(t, dir)
	insertOrders(t, e.nc, 10)
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Sealed = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	e.stop()
	if _, err := startEmbedded(t, dir, nil, storenode.WithAcceptDataLoss()); err == nil || !strings.Contains(err.Error(), "is sealed") {
		t.Fatalf("start on a sealed stream: %v", err)
	}
}

// TestReplayLargeEvents: replaying 1 MB events (120 MB, past the
// server's 64 MiB pending limit per connection) never makes a slow
// consumer, and the node's own connection is never cut.
func TestReplayLargeEvents(t *testing.T) {
	const n = 120
	dir := t.TempDir()
	big := storenode.WithMaxRecordBytes(2 << 20)
	e := mustStartEmbedded(t, dir, big)
	define(t, e.nc, events.BucketDef{Bucket: "blobs", Key: "id", Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeNumber, Required: true}, "data": {Type: events.TypeString}}})
	payload := strings.Repeat("x", 1_000_000) // requests are capped at 1 MiB
	for i := range n {
		mustCall(t, e.nc, events.CmdInsert, events.InsertRequest{Bucket: "blobs", Record: events.Record{"id": float64(i), "data": payload}}, nil)
	}
	e.stop()

	var mu sync.Mutex
	var asyncErrs []error
	onErr := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		asyncErrs = append(asyncErrs, err)
		mu.Unlock()
	})
	e, err := startEmbedded(t, dir, []nats.Option{onErr}, big)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.node.Status().LastSeq; got != n+1 {
		t.Errorf("rebuilt to sequence %d, want %d", got, n+1)
	}
	if got := e.srv.NumSlowConsumers(); got != 0 {
		t.Errorf("%d slow consumers", got)
	}
	if st := e.nc.Stats(); st.Reconnects != 0 || !e.nc.IsConnected() {
		t.Errorf("the node's connection was cut: %d reconnects, status %v", st.Reconnects, e.nc.Status())
	}
	mu.Lock()
	if len(asyncErrs) > 0 {
		t.Errorf("errors on the node's connection: %v", asyncErrs)
	}
	mu.Unlock()
	var count int
	mustCall(t, e.nc, events.CmdCount, events.CountRequest{Bucket: "blobs"}, &count)
	if count != n {
		t.Errorf("%d blobs, want %d", count, n)
	}
}

// TestSecondDaemonOnDataDir is issue 8's "two store nodes on one data
// directory" with the real daemon: the second exits non-zero naming the
// first, the first keeps serving, and after kill -9 of the first every
// write it acknowledged is there.
func TestSecondDaemonOnDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the storenode daemon")
	}
	dir := t.TempDir()
	first := startDaemon(t, dir)
	nc := connectURL(t, first.URL)
	define(t, nc, ordersDef())
	acked := map[float64]events.Record{}
	insert := func(n int) {
		for i := range n {
			var rec events.Record
			mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": float64(i)}}, &rec)
			acked[rec["id"].(float64)] = rec
		}
	}
	insert(100)

	second := procs.Start(t, procs.StorenodeSpec(t, dir, "127.0.0.1:0"))
	if state := second.WaitExit(t, procs.StartTimeout); state.Success() {
		t.Fatalf("the second store node exited with %s", state)
	}
	out := second.Output()
	if want := fmt.Sprintf("is in use by another store node: pid %d", first.Pid()); !strings.Contains(out, want) {
		t.Fatalf("second store node's output does not name the holder (%q):\n%s", want, out)
	}
	if strings.Contains(out, "storenode ready") {
		t.Fatalf("the second store node became ready:\n%s", out)
	}

	insert(100) // the first is unaffected
	first.Kill(t)
	again := startDaemon(t, dir)
	nc = connectURL(t, again.URL)
	orders := queryAll(t, nc, "orders", nil, 0)
	if len(orders) != len(acked) {
		t.Fatalf("%d orders after the restart, %d acknowledged", len(orders), len(acked))
	}
	for _, o := range orders {
		if want := acked[o["id"].(float64)]; !reflect.DeepEqual(o, want) {
			t.Fatalf("order %v, acknowledged %v", o, want)
		}
	}
}

// TestDaemonDataLoss: the real daemon on a data directory whose stream was
// deleted from outside exits non-zero naming the stream and the mark, and
// starts with --accept-data-loss, reporting the loss in status and
// /metrics.
func TestDaemonDataLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the storenode daemon")
	}
	dir := t.TempDir()
	d := startDaemon(t, dir)
	nc := connectURL(t, d.URL)
	insertOrders(t, nc, 5)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, events.DefaultStream); err != nil {
		t.Fatal(err)
	}
	d.Stop(t, 30*time.Second)

	refused := procs.Start(t, procs.StorenodeSpec(t, dir, "127.0.0.1:0"))
	if state := refused.WaitExit(t, procs.StartTimeout); state.ExitCode() != 1 {
		t.Fatalf("exit %s, want 1:\n%s", state, refused.Output())
	}
	if out, want := refused.Output(), "stream STORELOOP is missing but this node acknowledged events up to sequence 6"; !strings.Contains(out, want) {
		t.Fatalf("output does not say %q:\n%s", want, out)
	}

	spec := procs.StorenodeSpec(t, dir, "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-level", "info")
	spec.Env = []string{"STORELOOP_ACCEPT_DATA_LOSS=true"}
	d = procs.StartStorenode(t, spec)
	nc = connectURL(t, d.URL)
	var status events.StatusResult
	mustCall(t, nc, events.CmdStatus, struct{}{}, &status)
	if status.LostEvents != 6 || !reflect.DeepEqual(status.LostRanges, []events.SeqRange{{First: 1, Last: 6}}) || !status.Healthy {
		t.Fatalf("status %+v, want 6 events lost", status)
	}
	l := d.WaitLine(t, true, "http endpoints", procs.StartTimeout)
	_, addr, _ := strings.Cut(l, "addr=")
	addr, _, _ = strings.Cut(addr, " ")
	// A context of its own: the one above also spanned three daemon starts.
	getCtx, cancelGet := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelGet()
	body, err := procs.Get(getCtx, "http://"+strings.Trim(addr, `"`)+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if got := procs.Sum(body, "storeloop_events_lost_total"); got != 6 {
		t.Errorf("storeloop_events_lost_total = %v, want 6", got)
	}
}

// TestExternalServerDataDir: with --nats, a --data directory holds the
// node's lock and high-water mark: a second daemon on it is refused, and a
// stream deleted on the server is data loss at the next start.
func TestExternalServerDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the storenode daemon")
	}
	srv := natstest.Server(t)
	dir := t.TempDir()
	spec := procs.StorenodeSpec(t, dir, "127.0.0.1:0", "--nats", srv.ClientURL())
	first := procs.StartStorenode(t, spec)
	nc := connectURL(t, srv.ClientURL())
	insertOrders(t, nc, 3)

	second := procs.Start(t, spec)
	if state := second.WaitExit(t, procs.StartTimeout); state.ExitCode() != 1 ||
		!strings.Contains(second.Output(), fmt.Sprintf("in use by another store node: pid %d", first.Pid())) {
		t.Fatalf("second daemon: %s:\n%s", state, second.Output())
	}
	first.Stop(t, 30*time.Second)

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, events.DefaultStream); err != nil {
		t.Fatal(err)
	}
	again := procs.Start(t, spec)
	// Sequence 5: the leader marker (--nats takes the lease), the
	// definition and the three orders.
	if state := again.WaitExit(t, procs.StartTimeout); state.ExitCode() != 1 ||
		!strings.Contains(again.Output(), "stream STORELOOP is missing but this node acknowledged events up to sequence 5") {
		t.Fatalf("start after the stream was deleted: %s:\n%s", state, again.Output())
	}
}

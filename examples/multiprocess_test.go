package examples_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
)

// The e-commerce example on real daemons: a storenode process (embedded
// NATS on a loopback port, data on disk) and two rulenode processes
// sharing the rule set's durable consumer. Twenty users' orders go through
// their lifecycle concurrently; stock and loyalty come out exact — no rule
// effect lost or applied twice — and both rule nodes' /metrics show a part
// of the firings.
func TestMultiProcessEcommerce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bin := buildDaemons(t, "storenode", "rulenode")

	store := startProcess(t, bin["storenode"], "--data", t.TempDir(), "--listen", "127.0.0.1:"+freePort(t))
	url := strings.TrimPrefix(store.waitLine(t, "storenode ready nats="), "storenode ready nats=")
	var health []string
	for i := range 2 {
		addr := "127.0.0.1:" + freePort(t)
		rn := startProcess(t, bin["rulenode"], "--rules", "ecommerce/rules.yaml", "--nats", url, "--health", addr)
		rn.waitReady(t, fmt.Sprintf("rulenode %d", i+1), "http://"+addr+"/readyz")
		health = append(health, "http://"+addr)
	}

	sc, err := examples.Load("ecommerce")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := sc.Define(ctx, cl); err != nil {
		t.Fatal(err)
	}
	inventory, orders := cl.Bucket("inventory"), cl.Bucket("orders")
	for _, sku := range []string{"LAPTOP-1", "MOUSE-1"} {
		if _, err := inventory.Insert(ctx, events.Record{"sku": sku, "name": sku, "quantity": 1000.0}); err != nil {
			t.Fatal(err)
		}
	}

	// User i buys 1 + i%3 laptops for 1000 + 10i and 5 mice for 150:
	// int((1000 + 10i) / 10) + 15 = 115 + i points.
	const users = 20
	errs := make(chan error, users)
	var wg sync.WaitGroup
	wantLaptops, wantMice := 1000.0, 1000.0
	wantPoints := map[string]float64{}
	for i := range users {
		user := fmt.Sprintf("user%02d", i)
		laptops := float64(1 + i%3)
		wantLaptops -= laptops
		wantMice -= 5
		wantPoints[user] = 115 + float64(i)
		wg.Go(func() { errs <- lifecycle(ctx, orders, user, laptops, 1000+10*float64(i)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	if err := cl.Settle(ctx, client.SettleRuleSets(sc.Rules.Name)); err != nil {
		t.Fatal(err)
	}

	for sku, want := range map[string]float64{"LAPTOP-1": wantLaptops, "MOUSE-1": wantMice} {
		rec, err := inventory.Get(ctx, sku)
		if err != nil {
			t.Fatal(err)
		}
		// One update per order confirmed: version 1 + users.
		if rec["quantity"] != want || rec[events.FieldVersion] != float64(1+users) {
			t.Errorf("%s = %v, want quantity %v at version %d", sku, rec, want, 1+users)
		}
	}
	loyalty, err := cl.Bucket("loyalty").Where(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, r := range loyalty {
		got[r["userId"].(string)] = r["points"].(float64)
		if r[events.FieldVersion] != 2.0 {
			t.Errorf("loyalty %v: want version 2 (one upsert per shipped order)", r)
		}
	}
	if !reflect.DeepEqual(got, wantPoints) {
		t.Errorf("loyalty points = %v\nwant %v", got, wantPoints)
	}
	// Each order fires two rules once (deduct on confirm, loyalty on ship),
	// shared between the two processes.
	var fired []float64
	for _, h := range health {
		fired = append(fired, ruleFirings(t, h+"/metrics"))
	}
	if fired[0]+fired[1] != 2*2*users || fired[0] == 0 || fired[1] == 0 {
		t.Errorf("rule firings per process %v, want %d in all, on both", fired, 2*2*users)
	}

	js, err := jetstream.New(cl.Conn())
	if err != nil {
		t.Fatal(err)
	}
	if dls, err := examples.DeadLetters(ctx, js, sc.Rules.Name); err != nil || len(dls) != 0 {
		t.Errorf("dead letters: %+v, %v", dls, err)
	}
}

// buildDaemons builds the commands into a temporary directory.
func buildDaemons(t *testing.T, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	bins := map[string]string{}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "github.com/storeloop/storeloop/cmd/"+n)
		bins[n] = filepath.Join(dir, n)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bins
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// process is a daemon started by a test.
type process struct {
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line
	mu     sync.Mutex
	stderr bytes.Buffer
	exited chan struct{}
}

// startProcess starts bin; it is stopped (SIGTERM, then SIGKILL) when the
// test ends, and its stderr is logged if the test failed.
func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), lines: make(chan string, 16), exited: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for more lines; keep draining
			}
		}
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s stderr:\n%s", filepath.Base(bin), p.stderr.String())
			p.mu.Unlock()
		}
	})
	return p
}

// waitLine returns the first stdout line starting with prefix.
func (p *process) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-p.exited:
			t.Fatalf("%s exited before printing %q", p.cmd.Path, prefix)
		case <-deadline:
			t.Fatalf("%s did not print %q in 15s", p.cmd.Path, prefix)
		}
	}
}

// waitReady polls the readiness endpoint until it answers 200.
func (p *process) waitReady(t *testing.T, name, url string) {
	t.Helper()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready", name)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready in 15s (last: %v)", name, err)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// lifecycle is one user's orders: a laptop order and a mouse order,
// inserted, then both confirmed, then both shipped.
func lifecycle(ctx context.Context, orders *client.Bucket, user string, laptops, laptopTotal float64) error {
	var ids []any
	for _, o := range []events.Record{
		{"userId": user, "sku": "LAPTOP-1", "qty": laptops, "total": laptopTotal},
		{"userId": user, "sku": "MOUSE-1", "qty": 5.0, "total": 150.0},
	} {
		rec, err := orders.Insert(ctx, o)
		if err != nil {
			return err
		}
		ids = append(ids, rec["id"])
	}
	for _, status := range []string{"confirmed", "shipped"} {
		for _, id := range ids {
			if _, err := orders.Update(ctx, id, events.Record{"status": status}); err != nil {
				return fmt.Errorf("%s order %v %s: %w", user, id, status, err)
			}
		}
	}
	return nil
}

// ruleFirings sums the rule-firing counters of a rule node's /metrics.
func ruleFirings(t *testing.T, url string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for line := range strings.Lines(string(body)) {
		if name, value, ok := strings.Cut(strings.TrimSpace(line), " "); ok && strings.HasPrefix(name, "storeloop_rule_firings_total{") {
			n, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", url, line, err)
			}
			sum += n
		}
	}
	return sum
}

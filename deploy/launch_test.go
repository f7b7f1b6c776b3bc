package deploy_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/procs"
)

// launch runs deploy/launch.sh cmd with env and fails the test on error.
func launch(t *testing.T, env []string, cmd string) string {
	t.Helper()
	c := exec.Command("bash", "launch.sh", cmd)
	c.Env = append(os.Environ(), env...)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("launch.sh %s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// port returns a loopback port that was free a moment ago.
func port(t *testing.T) string {
	_, p, _ := strings.Cut(procs.FreeAddr(t), ":")
	return p
}

// ports returns the first of n consecutive loopback ports that were free a
// moment ago: launch.sh gives rule node i the port RULENODE_HTTP_PORT+i-1,
// and a neighbour of a free port may be taken by another test's listener.
func ports(t *testing.T, n int) string {
	t.Helper()
	for range 50 {
		first, _ := strconv.Atoi(port(t))
		var lns []net.Listener
		for i := range n {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(first+i))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if len(lns) == n {
			return strconv.Itoa(first)
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return ""
}

// launch.sh start runs the e-commerce example on a store node and two rule
// nodes: the seed's lifecycle comes out exact after `storeloop settle`,
// and launch.sh stop leaves no process behind.
func TestLaunch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	home := t.TempDir()
	natsPort := port(t)
	env := []string{"STORELOOP_HOME=" + home, "EXAMPLE=ecommerce", "RULENODES=2",
		"NATS_PORT=" + natsPort, "STORENODE_HTTP_PORT=" + port(t), "RULENODE_HTTP_PORT=" + ports(t, 2)}
	t.Cleanup(func() { // after a failure: stop whatever started
		stop := exec.Command("bash", "launch.sh", "stop")
		stop.Env = append(os.Environ(), env...)
		stop.Run()
	})
	out := launch(t, env, "start")
	url := "nats://127.0.0.1:" + natsPort
	if !strings.Contains(out, "export STORELOOP_NATS="+url) {
		t.Errorf("start did not say how to use it:\n%s", out)
	}
	pids, err := filepath.Glob(filepath.Join(home, "run", "*.pid"))
	if err != nil || len(pids) != 3 {
		t.Fatalf("pid files %v, %v; want storenode and two rulenodes", pids, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	inventory, orders := cl.Bucket("inventory"), cl.Bucket("orders")
	for _, r := range []events.Record{
		{"sku": "LAPTOP-1", "name": "Pro Laptop", "quantity": 50.0},
		{"sku": "MOUSE-1", "name": "Wireless Mouse", "quantity": 200.0},
	} {
		if _, err := inventory.Insert(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var ids []any
	for _, o := range []events.Record{
		{"userId": "alice", "sku": "LAPTOP-1", "qty": 2.0, "total": 2598.0},
		{"userId": "alice", "sku": "MOUSE-1", "qty": 5.0, "total": 150.0},
	} {
		rec, err := orders.Insert(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec["id"])
	}
	for _, status := range []string{"confirmed", "shipped"} {
		for _, id := range ids {
			if _, err := orders.Update(ctx, id, events.Record{"status": status}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The CLI the launcher built, as its usage says.
	settle, err := exec.Command(filepath.Join(home, "bin", "storeloop"), "--nats", url, "settle").CombinedOutput()
	if err != nil || strings.TrimSpace(string(settle)) != "settled" {
		t.Fatalf("storeloop settle: %v\n%s", err, settle)
	}
	want := map[string]map[any]float64{
		"inventory": {"LAPTOP-1": 48, "MOUSE-1": 195},
		"loyalty":   {"alice": 274},
	}
	field := map[string]string{"inventory": "quantity", "loyalty": "points"}
	for bucket, keys := range want {
		for key, v := range keys {
			rec, err := cl.Bucket(bucket).Get(ctx, key)
			if err != nil || rec[field[bucket]] != v || rec[events.FieldVersion] != 2.0 {
				t.Errorf("%s %v = %v, %v; want %s %v at version 2", bucket, key, rec, err, field[bucket], v)
			}
		}
	}

	var running []int
	for _, f := range pids {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		running = append(running, atoi(t, strings.Fields(string(b))[0]))
	}
	launch(t, env, "stop")
	for _, pid := range running {
		// Stopped processes are reaped by init; a zombie counts as gone.
		stat, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "stat"))
		if err == nil && !strings.Contains(string(stat), ") Z ") {
			t.Errorf("pid %d still runs after stop: %s", pid, stat)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(home, "run", "*.pid")); len(left) != 0 {
		t.Errorf("pid files left: %v", left)
	}
}

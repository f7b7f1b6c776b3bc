package procs

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartTimeout bounds how long a daemon may take to become ready.
const StartTimeout = 30 * time.Second

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for a daemon that must come back on the same address after a
// restart (the port 0 trick gives a new port each time).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("procs: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Storenode is a running cmd/storenode with its embedded NATS server.
type Storenode struct {
	*Proc
	URL string // the NATS client URL from the ready line
}

// StorenodeSpec is the Spec of a storenode on dataDir listening on listen
// (extra flags appended), logging warnings only.
func StorenodeSpec(t testing.TB, dataDir, listen string, extra ...string) Spec {
	t.Helper()
	args := append([]string{"--data", dataDir, "--listen", listen, "--log-level", "warn"}, extra...)
	return Spec{Name: "storenode", Bin: Build(t, "storenode"), Args: args}
}

// StartStorenode starts spec and waits for its "storenode ready nats=URL" line.
func StartStorenode(t testing.TB, spec Spec) *Storenode {
	t.Helper()
	p := Start(t, spec)
	ready := p.WaitLine(t, false, "storenode ready nats=", StartTimeout)
	_, url, _ := strings.Cut(ready, "nats=")
	return &Storenode{Proc: p, URL: url}
}

// Rulenode is a running cmd/rulenode with its health endpoint.
type Rulenode struct {
	*Proc
	Health string // host:port of /healthz, /readyz and /metrics
}

// RulenodeSpec is the Spec of a rulenode named name (for the log) running
// rules against natsURL, its health endpoint on a free port (extra flags
// appended). It logs at info: the bound health address is an info line.
func RulenodeSpec(t testing.TB, name, rules, natsURL string, extra ...string) Spec {
	t.Helper()
	args := append([]string{"--rules", rules, "--nats", natsURL, "--health", "127.0.0.1:0", "--log-level", "info"}, extra...)
	return Spec{Name: name, Bin: Build(t, "rulenode"), Args: args}
}

// StartRulenode starts spec and waits until its /readyz answers 200: the
// process has bound the rule set's consumer and fetches events.
func StartRulenode(t testing.TB, spec Spec) *Rulenode {
	t.Helper()
	p := Start(t, spec)
	// The daemon logs the bound address: `msg="http endpoints" addr=H:P`.
	l := p.WaitLine(t, true, "http endpoints", StartTimeout)
	_, addr, _ := strings.Cut(l, "addr=")
	addr, _, _ = strings.Cut(addr, " ")
	r := &Rulenode{Proc: p, Health: strings.Trim(addr, `"`)}
	p.WaitHTTP(t, "http://"+r.Health+"/readyz", StartTimeout)
	return r
}

// Metrics scrapes the rulenode's /metrics.
func (r *Rulenode) Metrics(ctx context.Context) (string, error) {
	return Get(ctx, "http://"+r.Health+"/metrics")
}

// Sum adds up every sample of the Prometheus metric family name (a counter
// or gauge, all label sets) in a text exposition body.
func Sum(body, name string) float64 {
	var total float64
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		rest, ok := strings.CutPrefix(l, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		if v, err := strconv.ParseFloat(rest[i+1:], 64); err == nil {
			total += v
		}
	}
	return total
}

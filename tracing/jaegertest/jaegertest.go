// Package jaegertest runs the real Jaeger all-in-one (v2) binary for tests:
// it builds it once from the tools module (tools/go.mod), starts it on free
// loopback ports with in-memory storage, and reads traces back through the
// query API, so a test can prove that spans leave the process and arrive
// joined up.
//
// The first build takes several minutes; guard callers with testing.Short.
// Set STORELOOP_JAEGER to the path of a prebuilt jaeger binary to skip it.
package jaegertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// Jaeger is a running Jaeger all-in-one, stopped when the test ends.
type Jaeger struct {
	// OTLPEndpoint is the OTLP/HTTP base URL, for tracing.WithOTLPEndpoint.
	OTLPEndpoint string
	// QueryURL is the base URL of the query HTTP API (/api/traces, …).
	QueryURL string
}

// Trace is one trace as the query API returns it.
type Trace struct {
	TraceID string
	Spans   []Span
}

// Span is one span of a [Trace], with its process's service name resolved.
type Span struct {
	TraceID       string
	SpanID        string
	OperationName string
	References    []Reference
	ServiceName   string
	// Tags are the span's attributes; Jaeger adds span.kind, otel.status_code
	// and error among others. Numbers decode as float64.
	Tags map[string]any
}

// Reference links a span to another: RefType is CHILD_OF or FOLLOWS_FROM.
type Reference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// ParentSpanID returns the span id of the CHILD_OF reference, or "" for a root.
func (s Span) ParentSpanID() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

const (
	startTimeout = time.Minute
	stopTimeout  = 10 * time.Second
	// startAttempts covers losing a free port to another process between
	// choosing it and Jaeger binding it.
	startAttempts = 3
)

// Start builds (once per test binary) and starts Jaeger, waits until its
// health check reports every component up, and stops it when t ends.
func Start(t testing.TB) *Jaeger {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("jaegertest: %v", err)
	}
	var errs []error
	for range startAttempts {
		j, err := start(t, bin)
		if err == nil {
			return j
		}
		errs = append(errs, err)
	}
	t.Fatalf("jaegertest: %v", errors.Join(errs...))
	return nil
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of the jaeger executable: $STORELOOP_JAEGER if set,
// else the one `go tool` builds from the tools module and keeps in the Go
// build cache (rebuilt only when tools/go.mod changes).
func Binary() (string, error) {
	buildOnce.Do(func() {
		if p := os.Getenv("STORELOOP_JAEGER"); p != "" {
			buildPath = p
			return
		}
		buildPath, buildErr = buildJaeger()
	})
	return buildPath, buildErr
}

func buildJaeger() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" {
		return "", errors.New("not inside the storeloop module: cannot find tools/")
	}
	// Test binaries of several packages start at once under `go test ./...`;
	// the first build takes minutes on two cores, so let one process build
	// while the others wait for the cached result instead of building too.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "storeloop-jaeger-build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	cmd := exec.Command("go", "tool", "-n", "jaeger")
	cmd.Dir = filepath.Join(root, "tools")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build jaeger in %s: %w\n%s", cmd.Dir, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// lockFile takes an exclusive lock on path, shared by every process on
// the machine, and returns its release.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jaeger build lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("jaeger build lock: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// configTemplate keeps Jaeger to four loopback ports (the all-in-one default
// also opens gRPC, Jaeger, Zipkin, sampling, metrics and zpages listeners on
// fixed ports) and to in-memory storage.
var configTemplate = template.Must(template.New("config").Parse(`
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{{.Health}}
      status:
        enabled: true
        path: /status
  jaeger_query:
    enable_tracing: false
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:{{.QueryHTTP}}
    grpc:
      endpoint: 127.0.0.1:{{.QueryGRPC}}
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{{.OTLP}}
processors:
  batch:
    timeout: 50ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`))

type ports struct{ Health, QueryHTTP, QueryGRPC, OTLP int }

func start(t testing.TB, bin string) (*Jaeger, error) {
	var p ports
	for _, port := range []*int{&p.Health, &p.QueryHTTP, &p.QueryGRPC, &p.OTLP} {
		n, err := freePort()
		if err != nil {
			return nil, err
		}
		*port = n
	}
	dir := t.TempDir()
	var cfg bytes.Buffer
	if err := configTemplate.Execute(&cfg, p); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfgPath, cfg.Bytes(), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "jaeger.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor

	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	health := fmt.Sprintf("http://127.0.0.1:%d/status", p.Health)
	if err := waitHealthy(health, exited); err != nil {
		stop()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w\njaeger log:\n%s", err, log)
	}
	t.Cleanup(stop)
	return &Jaeger{
		OTLPEndpoint: fmt.Sprintf("http://127.0.0.1:%d", p.OTLP),
		QueryURL:     fmt.Sprintf("http://127.0.0.1:%d", p.QueryHTTP),
	}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHealthy polls the health endpoint until it answers 200, Jaeger exits,
// or startTimeout passes.
func waitHealthy(url string, exited <-chan error) error {
	deadline := time.After(startTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("jaeger exited before it was healthy: %v", err)
		case <-deadline:
			return fmt.Errorf("jaeger not healthy at %s within %v", url, startTimeout)
		case <-tick.C:
		}
	}
}

// Traces returns the traces the query API holds for service.
func (j *Jaeger) Traces(service string) ([]Trace, error) {
	return j.traces(context.Background(), service)
}

// WaitForSpans polls the query API until service has at least n spans, and
// returns its traces; it fails when ctx ends first. Spans reach the query
// API after Jaeger's batch processor, shortly after the export.
func (j *Jaeger) WaitForSpans(ctx context.Context, service string, n int) ([]Trace, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		traces, err := j.traces(ctx, service)
		if err == nil && countSpans(traces) >= n {
			return traces, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("jaegertest: %d spans of %q not found: %w (last: %d spans, error %v)",
				n, service, ctx.Err(), countSpans(traces), err)
		case <-tick.C:
		}
	}
}

func countSpans(traces []Trace) int {
	n := 0
	for _, tr := range traces {
		n += len(tr.Spans)
	}
	return n
}

// apiTraces is the query API's JSON for /api/traces.
type apiTraces struct {
	Data []struct {
		TraceID string `json:"traceID"`
		Spans   []struct {
			TraceID       string      `json:"traceID"`
			SpanID        string      `json:"spanID"`
			OperationName string      `json:"operationName"`
			References    []Reference `json:"references"`
			ProcessID     string      `json:"processID"`
			Tags          []apiTag    `json:"tags"`
		} `json:"spans"`
		Processes map[string]struct {
			ServiceName string `json:"serviceName"`
		} `json:"processes"`
	} `json:"data"`
	Errors []struct {
		Msg string `json:"msg"`
	} `json:"errors"`
}

type apiTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

func (j *Jaeger) traces(ctx context.Context, service string) ([]Trace, error) {
	q := url.Values{"service": {service}, "limit": {"1000"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.QueryURL+"/api/traces?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body apiTraces
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("jaegertest: decode /api/traces (HTTP %d): %w", resp.StatusCode, err)
	}
	if len(body.Errors) > 0 {
		return nil, fmt.Errorf("jaegertest: /api/traces: %s", body.Errors[0].Msg)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaegertest: /api/traces: HTTP %d", resp.StatusCode)
	}
	traces := make([]Trace, 0, len(body.Data))
	for _, d := range body.Data {
		tr := Trace{TraceID: d.TraceID}
		for _, s := range d.Spans {
			tags := make(map[string]any, len(s.Tags))
			for _, tag := range s.Tags {
				tags[tag.Key] = tag.Value
			}
			tr.Spans = append(tr.Spans, Span{
				TraceID:       s.TraceID,
				SpanID:        s.SpanID,
				OperationName: s.OperationName,
				References:    s.References,
				ServiceName:   d.Processes[s.ProcessID].ServiceName,
				Tags:          tags,
			})
		}
		traces = append(traces, tr)
	}
	return traces, nil
}

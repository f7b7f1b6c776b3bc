package tracing

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestSetupNothingConfigured: no exporter, a no-op provider, and yet an
// incoming trace context is forwarded unchanged.
func TestSetupNothingConfigured(t *testing.T) {
	setup(t)
	if tp, ok := otel.GetTracerProvider().(noop.TracerProvider); !ok {
		t.Fatalf("TracerProvider = %T, want noop.TracerProvider", tp)
	}
	ctx := Extract(context.Background(), nats.Header{"traceparent": {remoteTraceparent}})
	ctx, span := StartCommandServer(ctx, "insert", "orders")
	defer span.End()
	if span.IsRecording() {
		t.Error("span is recording, want a no-op span")
	}
	msg := &nats.Msg{Subject: "bucket.orders.inserted"}
	Inject(ctx, msg)
	if got := msg.Header.Get("traceparent"); got != remoteTraceparent {
		t.Errorf("forwarded traceparent = %q, want %q", got, remoteTraceparent)
	}
}

func TestSetupProvider(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		opts   []Option
		wantOn bool
	}{
		{"nothing", nil, nil, false},
		{"flag", nil, []Option{WithOTLPEndpoint("http://127.0.0.1:4318")}, true},
		{"empty flag", nil, []Option{WithOTLPEndpoint("")}, false},
		{"endpoint env", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, nil, true},
		{"traces endpoint env", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, nil, true},
		{"exporter otlp", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, nil, true},
		{"json protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, nil, true},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, nil, false},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, nil, false},
		{"flag beats sdk disabled", map[string]string{"OTEL_SDK_DISABLED": "true"}, []Option{WithOTLPEndpoint("127.0.0.1:4318")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			setup(t, tt.opts...)
			_, on := otel.GetTracerProvider().(*sdktrace.TracerProvider)
			if on != tt.wantOn {
				t.Errorf("TracerProvider = %T, want SDK provider: %v", otel.GetTracerProvider(), tt.wantOn)
			}
		})
	}
}

func TestSetupConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		opts []Option
	}{
		{"grpc protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, nil},
		{"grpc traces protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, nil},
		{"zipkin exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, nil},
		{"ftp endpoint", nil, []Option{WithOTLPEndpoint("ftp://127.0.0.1:4318")}},
		{"no host", nil, []Option{WithOTLPEndpoint("http://")}},
		{"bad url", nil, []Option{WithOTLPEndpoint("http://[::1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			shutdown, err := Setup(context.Background(), "svc", tt.opts...)
			if !errors.Is(err, ErrConfig) || shutdown != nil {
				t.Errorf("Setup = %v, %v; want nil, ErrConfig", shutdown != nil, err)
			}
		})
	}
}

func TestEndpointURL(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"base", "http://jaeger:4318", "http://jaeger:4318/v1/traces"},
		{"trailing slash", "http://jaeger:4318/", "http://jaeger:4318/v1/traces"},
		{"no scheme", "localhost:4318", "http://localhost:4318/v1/traces"},
		{"https with path", "https://collector.example/otlp", "https://collector.example/otlp/v1/traces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := endpointURL(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("endpointURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSetupServiceName(t *testing.T) {
	tests := []struct{ name, env, want string }{
		{"argument", "", "test-service"},
		{"OTEL_SERVICE_NAME wins", "from-env", "from-env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("OTEL_SERVICE_NAME", tt.env)
			}
			exp := record(t)
			_, span := StartRule(context.Background(), "r")
			span.End()
			s := spanNamed(t, exp, "rule r", trace.SpanKindInternal)
			if got := attrMap(s.Resource.Attributes())["service.name"].AsString(); got != tt.want {
				t.Errorf("service.name = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSetupSampler(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		opts      []Option
		wantSpans int
	}{
		{"default samples all", nil, nil, 1},
		{"env always_off", map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, nil, 0},
		{"env ratio 0", map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, nil, 0},
		{"option beats env", map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, []Option{WithSampler(sdktrace.AlwaysSample())}, 1},
		{"option never", nil, []Option{WithSampler(sdktrace.NeverSample())}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			exp := record(t, tt.opts...)
			_, span := StartRule(context.Background(), "r")
			span.End()
			if got := len(exp.GetSpans()); got != tt.wantSpans {
				t.Errorf("exported %d spans, want %d", got, tt.wantSpans)
			}
		})
	}
}

// countingExporter counts exported spans and, unlike the in-memory exporter,
// keeps them across Shutdown.
type countingExporter struct{ n atomic.Int64 }

func (e *countingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.n.Add(int64(len(spans)))
	return nil
}
func (e *countingExporter) Shutdown(context.Context) error { return nil }

func TestShutdownFlushes(t *testing.T) {
	exp := &countingExporter{}
	// A batch that would wait an hour: only the shutdown can send it.
	bsp := sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBatchTimeout(time.Hour))
	shutdown, err := Setup(context.Background(), "svc", WithSpanProcessor(bsp))
	if err != nil {
		t.Fatal(err)
	}
	_, span := StartRule(context.Background(), "r")
	span.End()
	if n := exp.n.Load(); n != 0 {
		t.Fatalf("exported %d spans before shutdown, want 0", n)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := exp.n.Load(); n != 1 {
		t.Errorf("exported %d spans after shutdown, want 1", n)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
}

package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace/noop"
)

// Option configures [Setup].
type Option func(*config)

type config struct {
	endpoint   string
	sampler    sdktrace.Sampler
	processors []sdktrace.SpanProcessor
}

// WithOTLPEndpoint exports spans over OTLP/HTTP to url, the base URL of a
// collector such as Jaeger (http://localhost:4318); the /v1/traces path is
// appended as for OTEL_EXPORTER_OTLP_ENDPOINT. A URL without a scheme is taken
// as http://. It takes precedence over the environment. Empty means unset, so
// a --otlp flag can be passed through as is.
func WithOTLPEndpoint(url string) Option {
	return func(c *config) { c.endpoint = url }
}

// WithSampler overrides the sampler, which otherwise comes from
// OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (read by the SDK) and defaults
// to parentbased_always_on.
func WithSampler(s sdktrace.Sampler) Option {
	return func(c *config) { c.sampler = s }
}

// WithSpanProcessor adds a span processor; it turns tracing on.
func WithSpanProcessor(sp sdktrace.SpanProcessor) Option {
	return func(c *config) { c.processors = append(c.processors, sp) }
}

// WithExporter sends each span to exp synchronously when it ends (tests use
// tracetest.NewInMemoryExporter); it turns tracing on.
func WithExporter(exp sdktrace.SpanExporter) Option {
	return WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(exp))
}

// ErrConfig is wrapped by the errors [Setup] returns for a configuration it
// cannot honour: a malformed endpoint, an exporter other than otlp, or an OTLP
// protocol other than HTTP (storeloop ships only the HTTP exporter).
var ErrConfig = errors.New("tracing: invalid configuration")

// Setup installs storeloop's telemetry for a process named service:
//
//   - the W3C trace-context and baggage propagator, always, so context flows
//     through a process even when it exports nothing;
//   - a TracerProvider exporting over OTLP/HTTP when [WithOTLPEndpoint] is given
//     or OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT are set
//     (or OTEL_TRACES_EXPORTER=otlp, which uses the default localhost:4318), or
//     when a test passes [WithExporter] / [WithSpanProcessor]. Otherwise the
//     global TracerProvider is a no-op: no exporter, no goroutine.
//     OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true turn off the
//     environment's exporter;
//   - a MeterProvider whose instruments [MetricsHandler] serves in Prometheus
//     text format (collected on request: nothing runs in the background).
//
// OTEL_SERVICE_NAME overrides service, and OTEL_RESOURCE_ATTRIBUTES adds to
// the resource. shutdown flushes pending spans and releases the providers;
// call it before the process exits.
func Setup(ctx context.Context, service string, opts ...Option) (shutdown func(context.Context) error, err error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(), // after the argument: OTEL_SERVICE_NAME wins
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}

	exporterOpts, err := exporterOptions(cfg.endpoint)
	if err != nil {
		return nil, err
	}
	var tp *sdktrace.TracerProvider
	if exporterOpts != nil || len(cfg.processors) > 0 {
		tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
		if cfg.sampler != nil {
			tpOpts = append(tpOpts, sdktrace.WithSampler(cfg.sampler))
		}
		if exporterOpts != nil {
			// The HTTP client dials lazily, on the first batch.
			exp, err := otlptracehttp.New(ctx, exporterOpts...)
			if err != nil {
				return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
			}
			tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
		}
		for _, sp := range cfg.processors {
			tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(sp))
		}
		tp = sdktrace.NewTracerProvider(tpOpts...)
		otel.SetTracerProvider(tp)
	} else {
		otel.SetTracerProvider(noop.NewTracerProvider())
	}

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(reader))
	otel.SetMeterProvider(mp)
	metricsReader.Store(reader)

	var once sync.Once
	var shutdownErr error
	return func(ctx context.Context) error {
		once.Do(func() {
			if tp != nil {
				shutdownErr = tp.Shutdown(ctx)
			}
			metricsReader.CompareAndSwap(reader, nil)
			shutdownErr = errors.Join(shutdownErr, mp.Shutdown(ctx))
		})
		return shutdownErr
	}, nil
}

// exporterOptions returns the OTLP/HTTP exporter options for the flag value
// endpoint or the environment, or nil when no exporter is configured. The
// exporter reads the remaining OTEL_EXPORTER_OTLP_* variables (headers,
// timeout, compression, TLS) itself.
func exporterOptions(endpoint string) ([]otlptracehttp.Option, error) {
	if endpoint != "" {
		u, err := endpointURL(endpoint)
		if err != nil {
			return nil, err
		}
		return []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u)}, nil
	}
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, nil
	}
	switch exp := strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")); exp {
	case "otlp":
	case "", "none":
		if exp == "none" || (os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "") {
			return nil, nil
		}
	default:
		return nil, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q: only otlp and none are supported", ErrConfig, exp)
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch protocol {
	case "", "http/protobuf":
		return []otlptracehttp.Option{}, nil
	case "http/json":
		return []otlptracehttp.Option{otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON)}, nil
	default:
		return nil, fmt.Errorf("%w: OTLP protocol %q: use http/protobuf (port 4318)", ErrConfig, protocol)
	}
}

// endpointURL turns a base URL (http://host:4318, host:4318) into the traces
// URL, appending v1/traces to its path as the OTLP spec does for
// OTEL_EXPORTER_OTLP_ENDPOINT.
func endpointURL(base string) (string, error) {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("%w: otlp endpoint %q: %v", ErrConfig, base, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%w: otlp endpoint %q: want http://host:port", ErrConfig, base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	return u.String(), nil
}

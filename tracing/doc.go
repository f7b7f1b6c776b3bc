// Package tracing is the one place in storeloop that wires the OpenTelemetry
// SDK: [Setup] configures the tracer and meter providers from the standard
// OTEL_* environment variables (or a --otlp flag) and installs the W3C
// propagator, [HeaderCarrier] carries trace context in NATS headers, the
// Start* helpers open one span per hop of the store → event → rule → store
// cycle with OpenTelemetry messaging and RPC semantic conventions, and
// [Metrics] holds the daemons' instruments, served in Prometheus text format
// by [MetricsHandler].
//
// Other packages use only the OpenTelemetry API (go.opentelemetry.io/otel/trace
// and the global providers), never the SDK or an exporter. With nothing
// configured, tracing is off: no exporter, no background goroutine, yet the
// propagator still forwards an incoming trace context so the chain is not cut.
package tracing

package tracing

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// A small Prometheus text-format (0.0.4) writer over the SDK's ManualReader,
// instead of go.opentelemetry.io/otel/exporters/prometheus and the seven
// modules of the Prometheus client it pulls in: storeloop only needs
// cumulative counters, gauges and explicit-bucket histograms.

// metricsReader is the reader of the MeterProvider installed by the last Setup.
var metricsReader atomic.Pointer[sdkmetric.ManualReader]

// MetricsHandler serves the metrics of the MeterProvider installed by [Setup]
// in the Prometheus text exposition format, collecting them on each request.
// Before Setup (or after its shutdown) it answers 503. A gauge callback that
// fails is reported to the OpenTelemetry error handler and left out.
func MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reader := metricsReader.Load()
		if reader == nil {
			http.Error(w, "tracing: metrics are not set up", http.StatusServiceUnavailable)
			return
		}
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(r.Context(), &rm); err != nil {
			if errors.Is(err, sdkmetric.ErrReaderShutdown) {
				http.Error(w, "tracing: metrics are shut down", http.StatusServiceUnavailable)
				return
			}
			// A failing gauge callback must not hide every other metric:
			// report it and serve what was collected.
			otel.Handle(err)
		}
		var buf bytes.Buffer
		writePrometheus(&buf, &rm)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(buf.Bytes())
	})
}

// family is one Prometheus metric family: a HELP, a TYPE and its samples.
type family struct {
	name, help, typ string
	samples         []sample
}

// suffixOrder lays out a histogram as Prometheus does: buckets, sum, count.
var suffixOrder = map[string]int{"_bucket": 1, "_sum": 2, "_count": 3}

type sample struct {
	suffix string // "", "_bucket", "_sum", "_count"
	labels string // rendered {…}, sorted, may be empty
	le     float64
	value  float64
}

func writePrometheus(w io.Writer, rm *metricdata.ResourceMetrics) {
	families := map[string]*family{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			f := toFamily(m)
			if f == nil {
				continue
			}
			if prev, ok := families[f.name]; ok {
				// Same name from another scope: merge when the types agree;
				// Prometheus allows one TYPE per name.
				if prev.typ == f.typ {
					prev.samples = append(prev.samples, f.samples...)
				}
				continue
			}
			families[f.name] = f
		}
	}
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f := families[name]
		slices.SortStableFunc(f.samples, func(a, b sample) int {
			return cmp.Or(strings.Compare(a.labels, b.labels), cmp.Compare(suffixOrder[a.suffix], suffixOrder[b.suffix]), cmp.Compare(a.le, b.le))
		})
		if f.help != "" {
			fmt.Fprintf(w, "# HELP %s %s\n", f.name, escapeHelp(f.help))
		}
		fmt.Fprintf(w, "# TYPE %s %s\n", f.name, f.typ)
		for _, s := range f.samples {
			labels := s.labels
			if s.suffix == "_bucket" {
				labels = addLabel(labels, "le", formatFloat(s.le))
			}
			fmt.Fprintf(w, "%s%s%s %s\n", f.name, s.suffix, labels, formatFloat(s.value))
		}
	}
}

// toFamily converts one metric, or returns nil for an aggregation storeloop
// does not produce (exponential histograms, summaries).
func toFamily(m metricdata.Metrics) *family {
	base := promName(m.Name, m.Unit)
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		return sumFamily(base, m.Description, d.IsMonotonic, points(d.DataPoints))
	case metricdata.Sum[float64]:
		return sumFamily(base, m.Description, d.IsMonotonic, points(d.DataPoints))
	case metricdata.Gauge[int64]:
		return &family{name: base, help: m.Description, typ: "gauge", samples: points(d.DataPoints)}
	case metricdata.Gauge[float64]:
		return &family{name: base, help: m.Description, typ: "gauge", samples: points(d.DataPoints)}
	case metricdata.Histogram[int64]:
		return &family{name: base, help: m.Description, typ: "histogram", samples: histogram(d.DataPoints)}
	case metricdata.Histogram[float64]:
		return &family{name: base, help: m.Description, typ: "histogram", samples: histogram(d.DataPoints)}
	}
	return nil
}

func sumFamily(base, help string, monotonic bool, samples []sample) *family {
	if !monotonic {
		return &family{name: base, help: help, typ: "gauge", samples: samples}
	}
	return &family{name: base + "_total", help: help, typ: "counter", samples: samples}
}

func points[N int64 | float64](dps []metricdata.DataPoint[N]) []sample {
	out := make([]sample, 0, len(dps))
	for _, dp := range dps {
		out = append(out, sample{labels: renderLabels(dp.Attributes), value: float64(dp.Value)})
	}
	return out
}

func histogram[N int64 | float64](dps []metricdata.HistogramDataPoint[N]) []sample {
	var out []sample
	for _, dp := range dps {
		labels := renderLabels(dp.Attributes)
		// OTel bucket counts are per bucket; Prometheus' are cumulative.
		var cum uint64
		for i, bound := range dp.Bounds {
			cum += dp.BucketCounts[i]
			out = append(out, sample{suffix: "_bucket", labels: labels, le: bound, value: float64(cum)})
		}
		out = append(out,
			sample{suffix: "_bucket", labels: labels, le: math.Inf(1), value: float64(dp.Count)},
			sample{suffix: "_sum", labels: labels, value: float64(dp.Sum)},
			sample{suffix: "_count", labels: labels, value: float64(dp.Count)},
		)
	}
	return out
}

// unitSuffixes maps UCUM units to Prometheus base-unit suffixes; annotations
// such as {event} add no suffix.
var unitSuffixes = map[string]string{"s": "seconds", "ms": "milliseconds", "By": "bytes"}

// promName turns an OTel instrument name into a Prometheus metric name:
// storeloop.command.duration in s → storeloop_command_duration_seconds.
func promName(name, unit string) string {
	n := sanitize(name, true)
	if suffix, ok := unitSuffixes[unit]; ok && !strings.HasSuffix(n, "_"+suffix) {
		n += "_" + suffix
	}
	return n
}

// sanitize replaces characters Prometheus does not allow in names with '_'.
// Colons are allowed in metric names only.
func sanitize(s string, colon bool) string {
	b := []byte(s)
	for i, c := range b {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0 || colon && c == ':'
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}

func renderLabels(set attribute.Set) string {
	if set.Len() == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, kv := range set.ToSlice() { // sorted by key
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(sanitize(string(kv.Key), false))
		b.WriteString(`="`)
		b.WriteString(escapeLabel(kv.Value.Emit()))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func addLabel(labels, name, value string) string {
	pair := name + `="` + value + `"`
	if labels == "" {
		return "{" + pair + "}"
	}
	return labels[:len(labels)-1] + "," + pair + "}"
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

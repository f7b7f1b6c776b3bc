package tracing

import (
	"bytes"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestWritePrometheus(t *testing.T) {
	tests := []struct {
		name    string
		metrics [][]metricdata.Metrics // per scope
		want    string
	}{
		{
			name: "int counter without attributes",
			metrics: [][]metricdata.Metrics{{{Name: "a.b", Description: "As.", Unit: "{a}",
				Data: metricdata.Sum[int64]{IsMonotonic: true, DataPoints: []metricdata.DataPoint[int64]{{Value: 3}}}}}},
			want: "# HELP a_b_total As.\n# TYPE a_b_total counter\na_b_total 3\n",
		},
		{
			name: "float counter, label escaping, sorted samples",
			metrics: [][]metricdata.Metrics{{{Name: "c",
				Data: metricdata.Sum[float64]{IsMonotonic: true, DataPoints: []metricdata.DataPoint[float64]{
					{Attributes: attribute.NewSet(attribute.String("k", "z")), Value: 1},
					{Attributes: attribute.NewSet(attribute.String("k", "a\"b\\c\nd"), attribute.Int("n", 2)), Value: 0.5},
				}}}}},
			want: "# TYPE c_total counter\nc_total{k=\"a\\\"b\\\\c\\nd\",n=\"2\"} 0.5\nc_total{k=\"z\"} 1\n",
		},
		{
			name: "up-down sum is a gauge; help escaped; odd characters sanitized",
			metrics: [][]metricdata.Metrics{{{Name: "9queue-depth", Description: "line1\nback\\slash",
				Data: metricdata.Sum[int64]{IsMonotonic: false, DataPoints: []metricdata.DataPoint[int64]{
					{Attributes: attribute.NewSet(attribute.String("rule.set", "x")), Value: -2},
				}}}}},
			want: "# HELP _queue_depth line1\\nback\\\\slash\n# TYPE _queue_depth gauge\n_queue_depth{rule_set=\"x\"} -2\n",
		},
		{
			name: "float gauge in bytes",
			metrics: [][]metricdata.Metrics{{{Name: "mem", Unit: "By",
				Data: metricdata.Gauge[float64]{DataPoints: []metricdata.DataPoint[float64]{{Value: 1e21}}}}}},
			want: "# TYPE mem_bytes gauge\nmem_bytes 1e+21\n",
		},
		{
			name: "int histogram in ms, cumulative buckets",
			metrics: [][]metricdata.Metrics{{{Name: "lat", Unit: "ms",
				Data: metricdata.Histogram[int64]{DataPoints: []metricdata.HistogramDataPoint[int64]{{
					Attributes: attribute.NewSet(attribute.String("op", "get")),
					Bounds:     []float64{1, 10}, BucketCounts: []uint64{2, 0, 1}, Count: 3, Sum: 25,
				}}}}}},
			want: "# TYPE lat_milliseconds histogram\n" +
				"lat_milliseconds_bucket{op=\"get\",le=\"1\"} 2\n" +
				"lat_milliseconds_bucket{op=\"get\",le=\"10\"} 2\n" +
				"lat_milliseconds_bucket{op=\"get\",le=\"+Inf\"} 3\n" +
				"lat_milliseconds_sum{op=\"get\"} 25\n" +
				"lat_milliseconds_count{op=\"get\"} 3\n",
		},
		{
			name: "same name in two scopes: merged when types agree, else first wins",
			metrics: [][]metricdata.Metrics{
				{{Name: "x", Data: metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{Attributes: attribute.NewSet(attribute.String("s", "1")), Value: 1}}}}},
				{{Name: "x", Data: metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{Attributes: attribute.NewSet(attribute.String("s", "2")), Value: 2}}}}},
				{{Name: "x", Data: metricdata.Histogram[float64]{DataPoints: []metricdata.HistogramDataPoint[float64]{{Count: 1}}}}},
			},
			want: "# TYPE x gauge\nx{s=\"1\"} 1\nx{s=\"2\"} 2\n",
		},
		{
			name: "unsupported aggregation is left out",
			metrics: [][]metricdata.Metrics{{{Name: "exp",
				Data: metricdata.ExponentialHistogram[float64]{DataPoints: []metricdata.ExponentialHistogramDataPoint[float64]{{Count: 1}}}}}},
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rm metricdata.ResourceMetrics
			for _, ms := range tt.metrics {
				rm.ScopeMetrics = append(rm.ScopeMetrics, metricdata.ScopeMetrics{Metrics: ms})
			}
			var buf bytes.Buffer
			writePrometheus(&buf, &rm)
			if got := buf.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

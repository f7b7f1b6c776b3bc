package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/storeloop/storeloop/events"
)

// scrape fetches MetricsHandler's output, failing unless it answers wantCode.
func scrape(t *testing.T, wantCode int) string {
	t.Helper()
	rec := httptest.NewRecorder()
	MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != wantCode {
		t.Fatalf("GET /metrics = %d %s, want %d", rec.Code, body, wantCode)
	}
	return string(body)
}

func TestMetricsHandler(t *testing.T) {
	shutdown, err := Setup(context.Background(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m.Command(ctx, "insert", nil, 3*time.Millisecond)
	m.Command(ctx, "insert", nil, 2*time.Second)
	m.Command(ctx, "get", fmt.Errorf("wrapped: %w", events.Errorf(events.CodeNotFound, "x")), time.Millisecond)
	m.EventAppended(ctx, "orders", "inserted")
	m.EventAppended(ctx, "orders", "inserted")
	m.RuleFired(ctx, "loyalty-on-ship")
	m.RuleFailed(ctx, "loyalty-on-ship")
	m.RuleSkipped(ctx, "reorder-on-low-stock")
	m.RuleSkipped(ctx, "reorder-on-low-stock")
	m.DeadLettered(ctx, "commerce", "max_hop")
	m.MaxHopStopped(ctx, "commerce")
	pending := int64(7)
	reg, err := m.ObservePending("commerce", func(context.Context) (int64, error) { return pending, nil })
	if err != nil {
		t.Fatal(err)
	}
	reg2, err := m.ObservePending("broken", func(context.Context) (int64, error) { return 0, errors.New("consumer gone") })
	if err != nil {
		t.Fatal(err)
	}

	var handled []error
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { handled = append(handled, err) }))
	body := scrape(t, http.StatusOK)
	otel.SetErrorHandler(prev)
	if len(handled) != 1 || !strings.Contains(handled[0].Error(), "consumer gone") {
		t.Errorf("errors reported = %v, want the failing callback's", handled)
	}
	if err := reg2.Unregister(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# HELP storeloop_commands_total Store commands handled, by op and outcome (ok or error code).",
		"# TYPE storeloop_commands_total counter",
		`storeloop_commands_total{op="insert",outcome="ok"} 2`,
		`storeloop_commands_total{op="get",outcome="not_found"} 1`,
		"# TYPE storeloop_command_duration_seconds histogram",
		`storeloop_command_duration_seconds_bucket{op="insert",outcome="ok",le="0.0025"} 0`,
		`storeloop_command_duration_seconds_bucket{op="insert",outcome="ok",le="0.005"} 1`,
		`storeloop_command_duration_seconds_bucket{op="insert",outcome="ok",le="2.5"} 2`,
		`storeloop_command_duration_seconds_bucket{op="insert",outcome="ok",le="+Inf"} 2`,
		`storeloop_command_duration_seconds_sum{op="insert",outcome="ok"} 2.003`,
		`storeloop_command_duration_seconds_count{op="insert",outcome="ok"} 2`,
		`storeloop_events_appended_total{bucket="orders",op="inserted"} 2`,
		`storeloop_rule_firings_total{rule="loyalty-on-ship"} 1`,
		`storeloop_rule_failures_total{rule="loyalty-on-ship"} 1`,
		`storeloop_rule_skips_total{rule="reorder-on-low-stock"} 2`,
		`storeloop_deadletters_total{reason="max_hop",rule_set="commerce"} 1`,
		`storeloop_maxhop_stops_total{rule_set="commerce"} 1`,
		"# TYPE storeloop_consumer_pending gauge",
		`storeloop_consumer_pending{rule_set="commerce"} 7`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q; got:\n%s", want, body)
		}
	}
	if strings.Contains(body, `rule_set="broken"`) {
		t.Errorf("a failing pending callback was reported:\n%s", body)
	}

	// The gauge is read at each scrape, and stops with its registration.
	pending = 3
	if body := scrape(t, http.StatusOK); !strings.Contains(body, `storeloop_consumer_pending{rule_set="commerce"} 3`+"\n") {
		t.Errorf("pending not re-observed:\n%s", body)
	}
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if body := scrape(t, http.StatusOK); strings.Contains(body, `storeloop_consumer_pending{rule_set="commerce"}`) {
		t.Errorf("pending still reported after Unregister:\n%s", body)
	}

	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	scrape(t, http.StatusServiceUnavailable)
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, "ok"},
		{"contract", events.ErrConflict, "conflict"},
		{"wrapped contract", fmt.Errorf("tx: %w", events.Errorf(events.CodeUnique, "email")), "unique"},
		{"other", context.Canceled, "*errors.errorString"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Outcome(tt.err); got != tt.want {
				t.Errorf("Outcome(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

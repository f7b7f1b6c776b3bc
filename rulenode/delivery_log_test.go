package rulenode

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
)

// TestDeliveryLog: a delivery's lines carry its attributes, and the
// event's once it is decoded, as slog's With gave them; a level the
// handler does not log builds nothing.
func TestDeliveryLog(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d := &deliveryLog{base: base, set: "shop", subject: "bucket.orders.updated", seq: 42, n: 2}
	ctx := context.Background()

	d.InfoContext(ctx, "not logged", "k", 1)
	if d.built != nil || buf.Len() != 0 {
		t.Fatalf("an info line below the handler's level built a logger (%v) or wrote %q", d.built != nil, buf.String())
	}
	d.WarnContext(ctx, "before decoding", "k", 1)
	d.ev = &events.Event{Meta: events.Meta{EventID: "e1", CorrelationID: "c1", Hop: 3}}
	d.ErrorContext(ctx, "after decoding", "k", 2)

	var lines []map[string]any
	for line := range bytes.Lines(buf.Bytes()) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "time")
		lines = append(lines, m)
	}
	want := []map[string]any{
		{"level": "WARN", "msg": "before decoding", "ruleSet": "shop", "subject": "bucket.orders.updated", "streamSeq": 42.0, "delivery": 2.0, "k": 1.0},
		{"level": "ERROR", "msg": "after decoding", "ruleSet": "shop", "subject": "bucket.orders.updated", "streamSeq": 42.0, "delivery": 2.0,
			"eventId": "e1", "correlationId": "c1", "hop": 3.0, "k": 2.0},
	}
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("lines:\n%v\nwant:\n%v", lines, want)
	}
}

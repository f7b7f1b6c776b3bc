package tracing

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestObserveStore: the store's integrity and recovery gauges are read at
// each scrape.
func TestObserveStore(t *testing.T) {
	shutdown, err := Setup(context.Background(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := StoreHealth{Quarantined: 4, RebuildFailures: 2}
	reg, err := m.ObserveStore(func() StoreHealth { return h })
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	body := scrape(t, http.StatusOK)
	for _, want := range []string{"storeloop_store_quarantined 4", "storeloop_store_rebuild_failures 2"} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q; got:\n%s", want, body)
		}
	}
	h.RebuildFailures = 0
	if body := scrape(t, http.StatusOK); !strings.Contains(body, "storeloop_store_rebuild_failures 0\n") {
		t.Errorf("not re-observed:\n%s", body)
	}
}

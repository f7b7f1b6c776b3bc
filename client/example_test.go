package client_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

// A rule reacting to an event writes with the event's causal context: the
// store records the write one hop further along the same correlation.
func ExampleCausedBy() {
	ev := &events.Event{Type: events.OpUpdated, Bucket: "orders", Key: 1.0,
		Meta: events.Meta{EventID: "ev-2", CorrelationID: "ev-1", Hop: 0}}

	ctx := client.WithCause(context.Background(), client.CausedBy(ev, "loyalty-on-ship"))
	// c.Bucket("loyalty").Upsert(ctx, ...) now carries these headers.

	cause, _ := client.CauseFrom(ctx)
	fmt.Printf("correlation %s, caused by %s, hop %d, rule %s\n",
		cause.CorrelationID, cause.CausationID, cause.Hop, cause.RuleID)
	// Output: correlation ev-1, caused by ev-2, hop 1, rule loyalty-on-ship
}

// Store failures are *events.Error values: branch on the code with
// errors.Is, read the validation issues with errors.As.
func Example_errors() {
	var err error = &events.Error{Code: events.CodeValidation,
		Issues: []events.Issue{{Field: "total", Message: "must be at least 0", Code: "min"}}}

	var e *events.Error
	switch {
	case errors.Is(err, events.ErrConflict):
		fmt.Println("reload and retry")
	case errors.As(err, &e) && e.Code == events.CodeValidation:
		for _, is := range e.Issues {
			fmt.Printf("%s: %s\n", is.Field, is.Message)
		}
	}
	// Output: total: must be at least 0
}

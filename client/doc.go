// Package client is the Go client of a storeloop store node: typed bucket
// operations over NATS request/reply, transactions, and a tail of the event
// stream over a JetStream ordered consumer.
//
// A [Client] is made from a URL ([Connect]) or an existing connection
// ([New]) with functional options in the style of nats.go's jetstream
// package. Every call takes a context first. Failures reported by the store
// are *[events.Error] values, so callers branch on the contract's codes:
//
//	rec, err := c.Bucket("orders").Insert(ctx, events.Record{"total": 10})
//	var e *events.Error
//	switch {
//	case errors.Is(err, events.ErrUnique):
//	case errors.As(err, &e) && e.Code == events.CodeValidation:
//		for _, is := range e.Issues { ... }
//	}
//
// Mutations (define, insert, update, upsert, delete, tx) carry a fresh
// Storeloop-Command-Id, or the one set with [WithCommandID], and are retried
// with that same id when no store node answers, when a request times out or
// when the store replies unavailable; the store's idempotency makes such a
// retry safe. Causal headers come from [WithCause], so a rule action's write
// continues the chain of the event that triggered it (see [CausedBy]). The
// W3C trace context of ctx travels in the traceparent header of every
// request, under a client span named store.<command>.
package client

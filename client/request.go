package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/events"
)

// isMutation reports whether cmd changes state and so carries a command id
// that makes it safe to send again.
func isMutation(cmd string) bool {
	switch cmd {
	case events.CmdDefine, events.CmdInsert, events.CmdUpdate, events.CmdUpsert,
		events.CmdDelete, events.CmdTx:
		return true
	}
	return false
}

// Backoff between attempts: full jitter over an exponential ceiling.
const (
	backoffBase = 100 * time.Millisecond
	backoffMax  = 2 * time.Second
)

// do sends one logical command and decodes its result into result (a
// pointer, or nil to ignore it). Every attempt carries the same headers, so
// a retried mutation has the same command id and the store applies it once.
func (c *Client) do(ctx context.Context, cmd, bucket string, req, result any) (err error) {
	subject := events.CommandSubject(c.opts.prefix, cmd)
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%w: %w", events.Errorf(events.CodeBadRequest, "encode %s request", cmd), err)
	}

	ctx, span := c.tracer().Start(ctx, "store."+cmd,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", subject),
			attribute.String("storeloop.op", cmd),
		))
	if bucket != "" {
		span.SetAttributes(attribute.String("storeloop.bucket", bucket))
	}
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			span.SetAttributes(attribute.String("storeloop.error_code", string(events.CodeOf(err))))
		}
		span.End()
	}()

	msg := &nats.Msg{Subject: subject, Data: body, Header: c.headers(ctx, cmd)}
	if id := msg.Header.Get(events.HeaderCommandID); id != "" {
		span.SetAttributes(attribute.String("storeloop.command_id", id))
	}

	for attempt := 0; ; attempt++ {
		err = c.attempt(ctx, msg, result)
		if err == nil || !retryable(err) || attempt >= c.opts.retries || ctx.Err() != nil {
			break
		}
		wait := backoff(attempt)
		span.AddEvent("retry", trace.WithAttributes(
			attribute.Int("attempt", attempt+1),
			attribute.String("reason", err.Error()),
		))
		c.log.DebugContext(ctx, "storeloop client: retrying", "subject", subject,
			"attempt", attempt+1, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil && err != nil && !errors.Is(err, ctx.Err()) {
		// The caller gave up while we waited to retry: say so, keeping the
		// last failure for the message.
		err = fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
	}
	return unavailable(subject, err)
}

// attempt sends msg once, bounded by the per-request timeout.
func (c *Client) attempt(ctx context.Context, msg *nats.Msg, result any) error {
	actx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	reply, err := c.nc.RequestMsgWithContext(actx, msg)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no reply within %s: %w", c.opts.timeout, nats.ErrTimeout)
		}
		return err
	}
	return decodeReply(reply.Data, result)
}

// decodeReply turns a reply body into result, or into the store's *events.Error.
func decodeReply(data []byte, result any) error {
	var r events.Reply
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%w: %w", events.Errorf(events.CodeInternal, "malformed reply"), err)
	}
	if r.Error != nil {
		return r.Error
	}
	if result == nil || len(r.Result) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Result, result); err != nil {
		return fmt.Errorf("%w: %w", events.Errorf(events.CodeInternal, "unexpected result %.200s", r.Result), err)
	}
	return nil
}

// retryable reports whether sending the same command again may succeed.
func retryable(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, events.ErrUnavailable)
}

// unavailable maps transport failures that survived the retries to an
// *events.Error with code unavailable that still wraps the NATS error.
func unavailable(subject string, err error) error {
	var e *events.Error
	switch {
	case err == nil || errors.As(err, &e):
		return err
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w: %w", events.Errorf(events.CodeUnavailable, "no store node is serving %s", subject), err)
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrConnectionReconnecting):
		return fmt.Errorf("%w: %w", events.Errorf(events.CodeUnavailable, "%s", subject), err)
	}
	return err
}

func backoff(attempt int) time.Duration {
	ceil := backoffBase << min(attempt, 10)
	if ceil > backoffMax {
		ceil = backoffMax
	}
	return ceil/2 + rand.N(ceil/2)
}

// headers builds the request headers of cmd from ctx: command id for
// mutations, the causal chain, and the W3C trace context.
func (c *Client) headers(ctx context.Context, cmd string) nats.Header {
	h := nats.Header{}
	if isMutation(cmd) {
		id, ok := CommandIDFrom(ctx)
		if !ok {
			id = uuid.NewString()
		}
		h.Set(events.HeaderCommandID, id)
	}
	if cause, ok := CauseFrom(ctx); ok {
		if cause.CorrelationID != "" {
			h.Set(events.HeaderCorrelationID, cause.CorrelationID)
		}
		if cause.CausationID != "" {
			h.Set(events.HeaderCausationID, cause.CausationID)
		}
		h.Set(events.HeaderHop, strconv.Itoa(cause.Hop))
		if cause.RuleID != "" {
			h.Set(events.HeaderRule, cause.RuleID)
		}
	}
	otel.GetTextMapPropagator().Inject(ctx, headerCarrier(h))
	return h
}

// headerCarrier adapts nats.Header to propagation.TextMapCarrier without
// canonicalising keys: NATS headers are case-sensitive and the W3C keys
// are lowercase.
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string { return nats.Header(h).Get(key) }
func (h headerCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

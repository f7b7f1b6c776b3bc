package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/wirejson"
	"github.com/storeloop/storeloop/tracing"
)

// Backoff between attempts: full jitter over an exponential ceiling.
const (
	backoffBase = 100 * time.Millisecond
	backoffMax  = 2 * time.Second
)

// do sends one logical command and decodes its result into result (a
// pointer, or nil to ignore it). Every attempt carries the same headers, so
// a retried mutation has the same command id and the store applies it once.
func (c *Client) do(ctx context.Context, cmd, bucket string, req, result any) (err error) {
	subject := c.subject(cmd, bucket, req)
	body, err := encodeRequest(req)
	if err != nil {
		return fmt.Errorf("%w: %w", events.Errorf(events.CodeBadRequest, "encode %s request", cmd), err)
	}

	ctx, span := c.startSpan(ctx, cmd, bucket, subject)
	defer func() {
		tracing.RecordError(span, err)
		span.End()
	}()

	msg := &nats.Msg{Subject: subject, Data: body, Header: causalHeaders(ctx, cmd)}
	if id := msg.Header.Get(events.HeaderCommandID); id != "" && span.IsRecording() {
		span.SetAttributes(tracing.AttrCommandID.String(id))
	}
	tracing.Inject(ctx, msg)

	start := time.Now()
	for attempt := 0; ; attempt++ {
		err = c.attempt(ctx, msg, result)
		failingOver := time.Since(start) < c.opts.failover
		if err == nil || !retryable(err) || attempt >= c.opts.retries && !failingOver || ctx.Err() != nil {
			break
		}
		wait := backoff(attempt)
		if failingOver {
			wait = min(wait, failoverPoll)
		}
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

// startSpan starts the command's CLIENT span. With the no-op provider
// (what tracing.Setup installs when nothing exports spans) it builds no
// name or attributes: that span records nothing and only carries the
// caller's span context on.
func (c *Client) startSpan(ctx context.Context, cmd, bucket, subject string) (context.Context, trace.Span) {
	tr := c.tracer()
	if _, off := tr.(noop.Tracer); off {
		return tr.Start(ctx, "")
	}
	attrs := []attribute.KeyValue{
		semconv.RPCSystemNameKey.String("nats"),
		semconv.RPCMethod(subject),
		tracing.AttrOp.String(cmd),
	}
	if bucket != "" {
		attrs = append(attrs, tracing.AttrBucket.String(bucket))
	}
	return tr.Start(ctx, "store."+cmd, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// subject is the subject of command cmd on bucket with body req: scoped
// when the client was asked to and the command names buckets.
func (c *Client) subject(cmd, bucket string, req any) string {
	if !c.opts.scoped || !events.ScopedCommand(cmd) {
		return events.CommandSubject(c.opts.prefix, cmd)
	}
	if tx, ok := req.(events.TxRequest); ok {
		return events.ScopedSubject(c.opts.prefix, cmd, tx.Buckets()...)
	}
	return events.ScopedSubject(c.opts.prefix, cmd, bucket)
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

// encodeRequest encodes req as json.Marshal does; the writes a rule node
// sends most (insert, upsert, update) without reflection.
func encodeRequest(req any) ([]byte, error) {
	var o requestObject
	switch r := req.(type) {
	case events.InsertRequest:
		o.member("bucket", r.Bucket)
		o.member("record", r.Record)
	case events.UpsertRequest:
		o.member("bucket", r.Bucket)
		o.member("key", r.Key)
		if len(r.Record) > 0 {
			o.member("record", r.Record)
		}
		if len(r.Increment) > 0 {
			o.member("increment", r.Increment)
		}
	case events.UpdateRequest:
		o.member("bucket", r.Bucket)
		o.member("key", r.Key)
		if len(r.Changes) > 0 {
			o.member("changes", r.Changes)
		}
		if len(r.Increment) > 0 {
			o.member("increment", r.Increment)
		}
		if r.ExpectVersion != nil {
			o.member("expectVersion", *r.ExpectVersion)
		}
	case events.BatchRequest:
		return encodeBatchRequest(r)
	default:
		return json.Marshal(req)
	}
	return o.close()
}

// requestObject builds a JSON object member by member, in the order of the
// request struct's fields, as encoding/json writes them.
// b, when set, is the buffer the object is appended to.
type requestObject struct {
	b   []byte
	n   int // members so far
	err error
}

func (o *requestObject) member(name string, v any) {
	if o.err != nil {
		return
	}
	switch {
	case o.n > 0:
		o.b = append(o.b, ',')
	case o.b == nil:
		o.b = append(make([]byte, 0, 256), '{')
	default:
		o.b = append(o.b, '{')
	}
	o.n++
	o.b = wirejson.AppendString(o.b, name)
	o.b = append(o.b, ':')
	o.b, o.err = wirejson.Append(o.b, v)
}

func (o *requestObject) close() ([]byte, error) {
	if o.err != nil {
		return nil, o.err
	}
	if o.n == 0 {
		o.b = append(o.b, '{')
	}
	return append(o.b, '}'), nil
}

// decodeReply turns a reply body into result, or into the store's
// *events.Error. A body with neither (a JetStream PubAck from a stream that
// captures the command subjects, anything else that is not the store's
// reply) is an internal error, never a success.
func decodeReply(data []byte, result any) error {
	if rec, ok := result.(*events.Record); ok && *rec == nil && decodeRecordReply(data, rec) {
		return nil
	}
	if res, ok := result.(*events.BatchResult); ok && res.Results == nil && decodeBatchReply(data, res) {
		return nil
	}
	var r struct {
		Result replyResult   `json:"result"`
		Error  *events.Error `json:"error"`
	}
	r.Result.into = result
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%w: %w", events.Errorf(events.CodeInternal, "malformed reply"), err)
	}
	switch {
	case r.Result.err != nil:
		return fmt.Errorf("%w: %w", events.Errorf(events.CodeInternal, "unexpected result in %.200s", data), r.Result.err)
	case r.Error != nil:
		return r.Error
	case !r.Result.seen:
		return events.Errorf(events.CodeInternal, "not a store reply (neither result nor error): %.200s", data)
	}
	return nil
}

// replyResult decodes a reply's result into into (when not nil) and
// records that the reply had one: null is a result, a missing field is not.
type replyResult struct {
	into any
	seen bool
	err  error // the result is not what into holds
}

func (r *replyResult) UnmarshalJSON(data []byte) error {
	r.seen = true
	if r.into != nil {
		r.err = json.Unmarshal(data, r.into)
	}
	return nil
}

// decodeRecordReply decodes the common reply {"result":{...}} into the nil
// record rec without reflection. It reports false, leaving rec alone, for any other
// reply, which decodeReply then decodes with encoding/json.
func decodeRecordReply(data []byte, rec *events.Record) bool {
	var result events.Record
	ok := wirejson.ParseObject(data, func(key string, v any) bool {
		m, isRecord := v.(map[string]any)
		if key != "result" || !isRecord || result != nil {
			return false
		}
		result = m
		return true
	})
	if !ok || result == nil {
		return false
	}
	*rec = result
	return true
}

// retryable reports whether sending the same command again may succeed.
// An indeterminate write is retried with its command id too: that applies
// it at most once.
func retryable(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, events.ErrUnavailable) || errors.Is(err, events.ErrIndeterminate)
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

// causalHeaders builds the storeloop headers of cmd from ctx: the command id
// of a mutation and the causal chain.
func causalHeaders(ctx context.Context, cmd string) nats.Header {
	h := nats.Header{}
	if events.IsMutation(cmd) {
		id, ok := CommandIDFrom(ctx)
		if !ok {
			id = nuid.Next()
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
		if cause.RuleVersion > 0 {
			h.Set(events.HeaderRuleVersion, strconv.Itoa(cause.RuleVersion))
		}
	}
	return h
}

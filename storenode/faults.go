package storenode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// NATS faults are routine: on a cluster, the server a node is connected
// to may die (nats.go reconnects to another of the URLs it was given and
// fails the appends in flight with nats.ErrDisconnected), and the stream
// may be without a leader for a few seconds while its peers elect one. A
// JetStream request sent into either is never answered, so the rebuild
// after such a failure asks in short tries, again and again, until the
// stream answers or the rebuild's own deadline passes: it waits for the
// stream to lead again instead of failing into a long backoff.

// appendTimeout bounds the wait for a flight's acks. An ack takes
// milliseconds; none comes when the stream's leader died (its followers
// elect another after 4 to 9 s, nats-server's raft election timeout), so
// the wait is short: the rebuild it starts waits for the new leader (see
// awaitStream) and resolves the writes by what the stream then holds. A
// spurious timeout on a loaded machine costs a rebuild, never a write.
const appendTimeout = 2 * time.Second

// Bounds of one try at the stream, and the pause between tries.
const (
	streamTry   = time.Second
	streamRetry = 100 * time.Millisecond
)

// awaitStream looks the stream up, retrying until its leader answers, ctx
// ends, or it is known not to exist. During an election a follower
// answers instead, with no leader and its own, maybe older, state: reading
// the stream then would create a consumer the cluster cannot place yet,
// and nats.go tries that again only after 1, 2, 4 s, seconds past the
// election (see docs/benchmarks.md, "What storeloop adds to a stream
// leader election").
func awaitStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	return await(ctx, func(try context.Context) (jetstream.Stream, error) {
		if err := metaLed(try, js); err != nil {
			return nil, err
		}
		s, err := js.Stream(try, name)
		if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader == "" {
			return nil, errLeaderless
		}
		return s, err
	}, jetstream.ErrStreamNotFound)
}

// errLeaderless is a stream's info answered by a follower, or a cluster
// whose meta group has no leader.
var errLeaderless = errors.New("the stream has no leader: an election is under way")

// metaLed fails with errLeaderless while the cluster's meta group (which
// places consumers) has no leader: the servers then answer account info
// with 503, at once. Any other outcome lets the caller go on: a server
// that does not answer in half a try, or credentials without the right
// to ask, must not stop a rebuild.
func metaLed(try context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(try, streamTry/2)
	defer cancel()
	_, err := js.AccountInfo(ctx)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jsClusterNotAvail {
		return fmt.Errorf("%w (no meta leader: %v)", errLeaderless, err)
	}
	return nil
}

// await calls look in tries of streamTry until it succeeds, fails with
// one of the final errors (an answer that will not change), or ctx ends.
func await[T any](ctx context.Context, look func(context.Context) (T, error), final ...error) (T, error) {
	for {
		try, cancel := context.WithTimeout(ctx, streamTry)
		v, err := look(try)
		cancel()
		if err == nil || ctx.Err() != nil || slices.ContainsFunc(final, func(f error) bool { return errors.Is(err, f) }) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(streamRetry):
		}
	}
}

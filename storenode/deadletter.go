package storenode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// ensureDeadLetterStream creates the dead-letter stream rule nodes append
// to, or corrects one whose subjects are not exactly storeloop.dlq.>. The
// store node owns it so that no other role needs the right to create a
// stream: one created with other subjects would record every command and
// reply. Limits an operator set on an existing stream are kept. A create
// that finds the name taken (another store node made it just now) looks
// again, a bounded number of times with a growing pause: a server that
// keeps saying both "not found" and "in use" fails the start rather than
// holding it forever.
func (n *Node) ensureDeadLetterStream(ctx context.Context) error {
	if err := retryWhileTaken(ctx, n.tryDeadLetterStream); err != nil {
		return fmt.Errorf("storenode: dead-letter stream %s: %w", n.cfg.deadLetters, err)
	}
	return nil
}

// retryWhileTaken calls try until it ends otherwise than with
// jetstream.ErrStreamNameAlreadyInUse, at most deadLetterAttempts times,
// pausing between calls, or until ctx ends.
func retryWhileTaken(ctx context.Context, try func(context.Context) error) error {
	pause := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := try(ctx)
		switch {
		case !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			return err
		case attempt == deadLetterAttempts:
			return fmt.Errorf("still not found yet in use after %d attempts: %w", attempt, err)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause *= 2
	}
}

// deadLetterAttempts bounds ensureDeadLetterStream's looks (pauses of 10
// ms doubling: 1.3 s in all).
const deadLetterAttempts = 8

// tryDeadLetterStream is one look: create the stream if missing, correct
// it if its subjects are wrong.
func (n *Node) tryDeadLetterStream(ctx context.Context) error {
	name := n.cfg.deadLetters
	want := []string{events.DeadLetterSubjectPrefix + ".>"}
	s, err := n.js.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		_, err = n.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: "storeloop: events rule sets gave up on",
			Subjects:    want,
			Storage:     jetstream.FileStorage,
			Replicas:    n.cfg.replicas,
		})
		return err
	case err != nil:
		return err
	}
	cfg := s.CachedInfo().Config
	if slices.Equal(cfg.Subjects, want) && cfg.RePublish == nil && cfg.SubjectTransform == nil {
		return nil
	}
	n.log.Warn("dead-letter stream had other subjects or republished them: corrected",
		"stream", name, "subjects", cfg.Subjects, "republish", cfg.RePublish != nil)
	cfg.Subjects, cfg.RePublish, cfg.SubjectTransform = want, nil, nil
	_, err = n.js.UpdateStream(ctx, cfg)
	return err
}

// ensureRuleBuckets creates the KV buckets of rule budgets (quarantine
// states, cascade counters), for the reason the store node creates the
// dead-letter stream: rule nodes only bind them.
func (n *Node) ensureRuleBuckets(ctx context.Context) error {
	for _, cfg := range []jetstream.KeyValueConfig{{
		Bucket:      events.RuleStateBucket,
		Description: "storeloop: rule states (quarantine) per rule set and rule",
		History:     1,
		Replicas:    n.cfg.replicas,
	}, {
		Bucket:      events.CascadeBucket,
		Description: "storeloop: rule writes per correlation id (maxCascadeWrites)",
		History:     1,
		TTL:         events.CascadeWindow,
		Replicas:    n.cfg.replicas,
	}, {
		Bucket:      events.TemporalBucket,
		Description: "storeloop: temporal rules' partial matches and deadlines",
		History:     1,
		TTL:         events.TemporalStateTTL,
		Replicas:    n.cfg.replicas,
	}} {
		if _, err := n.js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("storenode: KV bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}

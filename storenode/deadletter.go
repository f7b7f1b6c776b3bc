package storenode

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// ensureDeadLetterStream creates the dead-letter stream rule nodes append
// to, or corrects one whose subjects are not exactly storeloop.dlq.>. The
// store node owns it so that no other role needs the right to create a
// stream: one created with other subjects would record every command and
// reply. Limits an operator set on an existing stream are kept.
func (n *Node) ensureDeadLetterStream(ctx context.Context) error {
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
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return n.ensureDeadLetterStream(ctx) // another store node made it first: check it
		}
	case err == nil:
		cfg := s.CachedInfo().Config
		if slices.Equal(cfg.Subjects, want) && cfg.RePublish == nil && cfg.SubjectTransform == nil {
			return nil
		}
		n.log.Warn("dead-letter stream had other subjects or republished them: corrected",
			"stream", name, "subjects", cfg.Subjects, "republish", cfg.RePublish != nil)
		cfg.Subjects, cfg.RePublish, cfg.SubjectTransform = want, nil, nil
		_, err = n.js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		return fmt.Errorf("storenode: dead-letter stream %s: %w", name, err)
	}
	return nil
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

package auth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/storenode"
)

// The store role may ask the lease bucket's stream to step down (the
// leader moves it off the event stream leader's server) and no other
// stream: a stepdown of the event stream or the dead-letter stream would
// cost every writer an election. Rule nodes and clients may ask none.
func TestStoreStepsDownOnlyTheLeaseBucket(t *testing.T) {
	s := startSecured(t, storenode.EmbeddedConfig{}, auth.ConnConfig{})
	lease := "$JS.API.STREAM.LEADER.STEPDOWN.KV_" + events.LeaseBucket
	others := []string{"$JS.API.STREAM.LEADER.STEPDOWN." + events.DefaultStream,
		"$JS.API.STREAM.LEADER.STEPDOWN." + auth.DefaultDeadLetterStream,
		"$JS.API.STREAM.LEADER.STEPDOWN.KV_" + events.RuleStateBucket}
	for _, role := range []auth.Role{auth.RoleStore, auth.RoleRuleNode, auth.RoleClient} {
		t.Run(string(role), func(t *testing.T) {
			nc, errs := s.as(t, role)
			denied := others
			if role == auth.RoleStore {
				// The server answers (a single server has no leader to
				// move: an error reply), no permissions violation.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				msg, err := nc.RequestWithContext(ctx, lease, []byte(`{"placement":{"preferred":"elsewhere"}}`))
				if err != nil {
					t.Fatalf("stepdown of the lease bucket: %v", err)
				}
				if !strings.Contains(string(msg.Data), "stream_leader_stepdown_response") {
					t.Fatalf("stepdown of the lease bucket answered %s", msg.Data)
				}
			} else {
				denied = append(denied, lease)
			}
			for _, subj := range denied {
				if err := nc.Publish(subj, []byte(`{}`)); err != nil {
					t.Fatal(err)
				}
				wantViolation(t, errs, "publish", subj)
			}
		})
	}
}

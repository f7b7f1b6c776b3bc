package auth_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/storenode"
)

// The limits are signed into the account JWT (JetStream) and into the
// client and rule node users (subscriptions); store and admin are not
// limited per connection.
func TestLimitsSignedIntoJWT(t *testing.T) {
	for name, tc := range map[string]struct {
		opts []auth.Option
		want auth.Limits
	}{
		"default": {nil, auth.DefaultLimits},
		"set":     {[]auth.Option{auth.WithLimits(auth.Limits{Streams: 8, Consumers: 20, DiskBytes: 10 << 30, MemoryBytes: -1, Subscriptions: 50})}, auth.Limits{Streams: 8, Consumers: 20, DiskBytes: 10 << 30, MemoryBytes: -1, Subscriptions: 50}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "auth")
			if err := auth.Init(dir, tc.opts...); err != nil {
				t.Fatal(err)
			}
			as, err := auth.LoadServer(dir)
			if err != nil {
				t.Fatal(err)
			}
			m, err := conf.ParseFile(filepath.Join(dir, auth.ServerConfFile))
			if err != nil {
				t.Fatal(err)
			}
			token, _ := m["resolver_preload"].(map[string]any)[as.Account].(string)
			ac, err := jwt.DecodeAccountClaims(token)
			if err != nil {
				t.Fatal(err)
			}
			js := ac.Limits.JetStreamLimits
			got := fmt.Sprintf("streams=%d consumers=%d disk=%d memory=%d", js.Streams, js.Consumer, js.DiskStorage, js.MemoryStorage)
			want := fmt.Sprintf("streams=%d consumers=%d disk=%d memory=%d", tc.want.Streams, tc.want.Consumers, tc.want.DiskBytes, tc.want.MemoryBytes)
			if got != want {
				t.Errorf("account JetStream limits %s, want %s", got, want)
			}
			for _, r := range auth.Roles {
				uc := userClaims(t, filepath.Join(dir, r.CredsFile()))
				want := int64(-1)
				if r == auth.RoleClient || r == auth.RoleRuleNode {
					want = tc.want.Subscriptions
				}
				if uc.Limits.Subs != want {
					t.Errorf("%s: subscriptions limit %d, want %d", r, uc.Limits.Subs, want)
				}
			}
		})
	}
	for _, bad := range []auth.Limits{{}, {Streams: 1, Consumers: -2, DiskBytes: 1, MemoryBytes: 1, Subscriptions: 1}} {
		if err := auth.Init(filepath.Join(t.TempDir(), "auth"), auth.WithLimits(bad)); err == nil {
			t.Errorf("limits %+v accepted", bad)
		}
	}
}

func userClaims(t *testing.T, creds string) *jwt.UserClaims {
	t.Helper()
	body, err := os.ReadFile(creds)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.ParseDecoratedJWT(body)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	return uc
}

// The server enforces them: past the account's consumers a new one is
// refused with JetStream's error, and a client past its subscriptions
// gets the server's error.
func TestLimitsEnforced(t *testing.T) {
	const consumers, subs = 4, 3
	s := startSecured(t, storenode.EmbeddedConfig{}, auth.ConnConfig{},
		auth.WithLimits(auth.Limits{Streams: 8, Consumers: consumers, DiskBytes: -1, MemoryBytes: -1, Subscriptions: subs}))
	ctx := ctxT(t)
	created := 0
	for i := range consumers + 1 {
		_, err := s.js.CreateOrUpdateConsumer(ctx, events.DefaultStream, jetstream.ConsumerConfig{
			Durable: fmt.Sprintf("set%d", i), AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			if !errors.Is(err, jetstream.ErrMaximumConsumersLimit) {
				t.Fatalf("consumer %d: %v, want the maximum consumers error", i, err)
			}
			break
		}
		created++
	}
	if created == consumers+1 {
		t.Fatalf("created %d consumers past the limit of %d", created, consumers)
	}
	total := 0
	for _, stream := range []string{events.DefaultStream, events.DefaultDeadLetterStream} {
		st, err := s.js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		for range st.ConsumerNames(ctx).Name() {
			total++
		}
	}
	if total != consumers {
		t.Fatalf("the account has %d consumers when one was refused, want the limit %d", total, consumers)
	}

	nc, errs := s.as(t, auth.RoleClient)
	prefix := nc.Opts.InboxPrefix
	for i := range subs + 1 {
		if _, err := nc.SubscribeSync(fmt.Sprintf("%s.%d", prefix, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case err := <-errs:
			if errors.Is(err, nats.ErrMaxSubscriptionsExceeded) {
				return
			}
			t.Logf("other async error: %v", err)
		case <-ctx.Done():
			t.Fatal("no maximum subscriptions error past the limit")
		}
	}
}

package auth

import (
	"fmt"

	"github.com/nats-io/jwt/v2"
)

// Limits bound what the account's users can take of the server, so that
// one client cannot exhaust its disk, memory or consumers. -1 is no limit.
type Limits struct {
	Streams     int64 // JetStream streams of the account
	Consumers   int64 // JetStream consumers of the account, durable and ordered
	DiskBytes   int64 // file storage of all the account's streams
	MemoryBytes int64 // memory storage of all the account's streams
	// Subscriptions caps each client and rule node connection (the store
	// and admin are not limited).
	Subscriptions int64
}

// DefaultLimits leave room for the event and dead-letter streams, the
// key-value and object stores beside them, a durable consumer per rule set
// and every client's ordered consumers; disk is not limited by default (a
// full stream refuses writes: size it with --max-disk), nor memory (only the
// store and admin create streams; an account limit above the server's
// max_memory_store would keep JetStream off for the account).
var DefaultLimits = Limits{Streams: 64, Consumers: 1000, DiskBytes: -1, MemoryBytes: -1, Subscriptions: 1000}

// WithLimits sets the limits [Init] signs into the account and the users
// (default [DefaultLimits]).
func WithLimits(l Limits) Option {
	return func(c *config) error {
		for name, v := range map[string]int64{"streams": l.Streams, "consumers": l.Consumers, "disk bytes": l.DiskBytes,
			"memory bytes": l.MemoryBytes, "subscriptions": l.Subscriptions} {
			if v == 0 || v < -1 {
				return fmt.Errorf("auth: max %s %d: want a positive number, or -1 for no limit", name, v)
			}
		}
		c.limits = l
		return nil
	}
}

// jetStream is l as the account JWT's JetStream limits.
func (l Limits) jetStream() jwt.JetStreamLimits {
	return jwt.JetStreamLimits{MemoryStorage: l.MemoryBytes, DiskStorage: l.DiskBytes, Streams: l.Streams, Consumer: l.Consumers}
}

// limited reports whether role's connections get the per-connection limits.
func limited(r Role) bool { return r == RoleClient || r == RoleRuleNode }

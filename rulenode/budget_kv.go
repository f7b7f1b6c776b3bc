package rulenode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"

	"github.com/nats-io/nats.go/jetstream"
)

// casUpdate replaces the value under key with what change makes of it
// (nil: the key is absent or deleted), written only if no other writer
// came in between, else read and changed again. change returns write
// false to leave the key as it is.
func casUpdate(ctx context.Context, kv jetstream.KeyValue, key string, change func(old []byte) (next []byte, write bool, err error)) error {
	for {
		var old []byte
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case err == nil:
			old, rev = e.Value(), e.Revision()
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return err
		}
		next, write, err := change(old)
		if err != nil || !write {
			return err
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, next)
		} else {
			_, err = kv.Update(ctx, key, next, rev)
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return err
		}
	}
}

var kvTokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// kvToken is s as one KV key token: s itself when it is short and plain,
// else "h-" and a hash of it.
func kvToken(s string) string {
	if kvTokenRE.MatchString(s) {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "h-" + hex.EncodeToString(sum[:16])
}

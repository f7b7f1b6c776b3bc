package rulenode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"

	"github.com/nats-io/nats.go/jetstream"
)

// bindKV binds the KV bucket name of budgets, which the store node
// creates at start: a rule node may not create streams (one made with
// other subjects could capture commands and replies).
func bindKV(ctx context.Context, js jetstream.JetStream, name, what string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("rulenode: %s: KV bucket %s not found (a store node creates it at start): %w", what, name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("rulenode: %s %s: %w", what, name, err)
	}
	return kv, nil
}

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

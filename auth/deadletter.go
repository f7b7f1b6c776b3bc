package auth

import (
	"fmt"

	"github.com/storeloop/storeloop/events"
)

// WithDeadLetterStream names the dead-letter stream the permissions are
// written for (default [DefaultDeadLetterStream]): the store creates and
// corrects it, rule nodes look it up. Give it the name the store node and
// rule nodes are given (--dlq-stream).
func WithDeadLetterStream(name string) Option {
	return func(c *config) error {
		if !events.ValidBucketName(name) {
			return fmt.Errorf("auth: dead-letter stream %q: want letters, digits, '_' and '-'", name)
		}
		c.dlqStream = name
		return nil
	}
}

package client_test

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/internal/natstest"
)

// New takes a connection already made: the options of one to open are
// refused rather than silently ignored.
func TestNewRefusesConnectionOptions(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	for name, opt := range map[string]client.Option{
		"WithNATSOptions": client.WithNATSOptions(nats.UserCredentials("x.creds")),
		"WithName":        client.WithName("app"),
	} {
		if c, err := client.New(nc, opt); err == nil || !strings.Contains(err.Error(), "Connect") {
			t.Errorf("New with %s = %v, %v; want refused", name, c, err)
		}
	}
	if _, err := client.New(nc, client.WithCommandPrefix("shop")); err != nil {
		t.Fatalf("New with a client option: %v", err)
	}
}

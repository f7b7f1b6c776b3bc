package rulenode_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/rulenode"
)

// A rule node: load a rule set and run it until interrupted. Start as many
// of these as you like; they share the rule set's consumer.
func ExampleNewRunner() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	cl, err := client.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	set, err := rulenode.LoadFile("rules.yaml")
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := rulenode.NewRunner(js, cl, set, rulenode.WithConcurrency(4)).Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// The command id of the first action of rule loyalty-on-ship, rule set
// commerce, for the event at stream sequence 42: the same on every
// redelivery, so the store applies the write once.
func ExampleCommandID() {
	fmt.Println(rulenode.CommandID("commerce", "loyalty-on-ship", 42, "0"))
	// Output: commerce/loyalty-on-ship/42/0
}

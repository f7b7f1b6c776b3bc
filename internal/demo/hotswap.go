package demo

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/rulenode"
)

// bobTotal is the total of each order shipped in the hot rule change.
const bobTotal = 250

// hotSwap shows a rule change without a restart: the example's rule set
// is deployed as version 1 and run by a rule node of the deployed set,
// then version 2 — loyalty-on-ship giving a point per 5 instead of per
// 10 — is deployed while it runs: an order shipped before earns version
// 1's points, one shipped after version 2's.
func hotSwap(ctx context.Context, w io.Writer, url string, cl *client.Client) error {
	src, err := fs.ReadFile(examples.FS, "ecommerce/rules.yaml")
	if err != nil {
		return err
	}
	js, err := jetstream.New(cl.Conn())
	if err != nil {
		return err
	}
	reg, err := rulenode.OpenRegistry(ctx, js, events.DefaultStream)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\n▶ a hot rule change (storeloop rules deploy, rulenode --ruleset)")
	v1, _, err := reg.Deploy(ctx, src, "demo")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  deployed %s version 1 (hash %.12s): it handles events from stream sequence %d\n", v1.Name, v1.Hash, v1.From)
	node, err := examples.RunDeployed(ctx, url, v1.Name, rulenode.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	defer node.Stop()
	fmt.Fprintf(w, "  rule node running the deployed rule set %s\n", v1.Name)

	if err := ship(ctx, w, cl, v1.Name, "carol", bobTotal/10, "version 1's rule: total / 10"); err != nil {
		return err
	}

	edited := strings.Replace(string(src), "int(event.newRecord.total / 10)", "int(event.newRecord.total / 5)", 1)
	v2, _, err := reg.Deploy(ctx, []byte(edited), "demo")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  deployed version 2 (loyalty-on-ship: a point per 5 instead of per 10), hash %.12s: from stream sequence %d on, the running rule node uses it — no restart\n", v2.Hash, v2.From)
	return ship(ctx, w, cl, v1.Name, "bob", bobTotal/5, "version 2's rule: total / 5")
}

// ship ships an order of bobTotal for user, waits for the rules and
// checks that user has want loyalty points.
func ship(ctx context.Context, w io.Writer, cl *client.Client, ruleSet, user string, want float64, why string) error {
	order, err := cl.Bucket("orders").Insert(ctx, events.Record{"userId": user, "sku": "MOUSE-1", "qty": 1, "total": bobTotal})
	if err != nil {
		return err
	}
	if _, err := cl.Bucket("orders").Update(ctx, order["id"], events.Record{"status": "shipped"}); err != nil {
		return err
	}
	if err := cl.Settle(ctx, client.SettleRuleSets(ruleSet)); err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	rec, err := cl.Bucket("loyalty").Get(ctx, user)
	if err != nil {
		return err
	}
	points, _ := rec["points"].(float64)
	fmt.Fprintf(w, "  %s ships an order of %d: %v points  (%s)\n", user, bobTotal, points, why)
	if points != want {
		return fmt.Errorf("hot rule change: %s has %v points, want %v", user, points, want)
	}
	return nil
}

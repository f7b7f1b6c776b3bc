// Command gohandlers runs two of the seed's rules — loyalty points on
// shipment and per-user order statistics — written as Go handler functions
// instead of YAML, on an embedded NATS server, a store node and a rule
// runner, all in this process. It prints the results.
//
// A Go rule is a [rulenode.Rule] with a Handler. The handler writes through
// env.Store, which gives each call an idempotent command id (rule set, rule,
// event sequence and the call's ordinal), so a handler that makes the same
// calls in the same order for the same event is applied once, however often
// the event is delivered. Writes declares what the handler writes, for
// [rulenode.Lint].
package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/rulenode"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gohandlers:", err)
		os.Exit(1)
	}
}

// ruleSet is the rule set of this program, all Go.
func ruleSet() (*rulenode.RuleSet, error) {
	return rulenode.NewRuleSet("gohandlers",
		&rulenode.Rule{
			ID:      "loyalty-on-ship",
			On:      []string{events.EventSubject("orders", events.OpUpdated)},
			Writes:  []string{"bucket.loyalty.*"},
			Handler: loyaltyOnShip,
		},
		&rulenode.Rule{
			ID:      "user-stats-on-order",
			On:      []string{events.EventSubject("orders", events.OpInserted)},
			Writes:  []string{"bucket.userStats.*"},
			Handler: userStatsOnOrder,
		},
	)
}

// loyaltyOnShip is the seed's rule with its guards: only the transition to
// shipped counts. One upsert with an increment replaces the seed's get,
// then insert or update, which loses points when two workers race.
func loyaltyOnShip(ctx context.Context, ev *events.Event, env *rulenode.Env) error {
	if ev.OldRecord["status"] == "shipped" || ev.NewRecord["status"] != "shipped" {
		return nil
	}
	userID, total, err := orderOf(ev.NewRecord)
	if err != nil {
		return err
	}
	_, err = env.Store.Upsert(ctx, "loyalty", userID, events.Record{"userId": userID},
		map[string]float64{"points": math.Floor(total / 10)})
	return err
}

// userStatsOnOrder keeps the derived statistics of the order's user. The
// seed's lastOrder: Date.now() is the event's time: a redelivered event
// writes the same value.
func userStatsOnOrder(ctx context.Context, ev *events.Event, env *rulenode.Env) error {
	userID, total, err := orderOf(ev.Record)
	if err != nil {
		return err
	}
	_, err = env.Store.Upsert(ctx, "userStats", userID,
		events.Record{"userId": userID, "lastOrder": float64(ev.Meta.Time)},
		map[string]float64{"orderCount": 1, "totalSpent": total})
	return err
}

// orderOf reads an order's user and total. A malformed order is a
// validation error, which the runner does not retry: it dead-letters the
// event at once.
func orderOf(rec events.Record) (string, float64, error) {
	userID, ok1 := rec["userId"].(string)
	total, ok2 := rec["total"].(float64)
	if !ok1 || !ok2 {
		return "", 0, events.Errorf(events.CodeValidation, "order without a string userId and a number total: %v", rec)
	}
	return userID, total, nil
}

// stats is a userStats record.
type stats struct {
	OrderCount, TotalSpent float64
	LastOrder              int64
}

// result is what the program found in the store once the rules settled.
type result struct {
	Points map[string]float64 // loyalty points per user
	Stats  map[string]stats   // userStats per user
	// OrderTimes are the meta.time of each user's order inserts, in
	// stream order: lastOrder must be the last of them.
	OrderTimes map[string][]int64
}

// run starts the store and the rules, runs the scenario, prints the
// results to w and returns them.
func run(ctx context.Context, w io.Writer) (*result, error) {
	loyalty, err := examples.Load("loyalty")
	if err != nil {
		return nil, err
	}
	userStats, err := examples.Load("userstats")
	if err != nil {
		return nil, err
	}
	set, err := ruleSet()
	if err != nil {
		return nil, err
	}
	if cycles := rulenode.Lint(set); len(cycles) > 0 {
		return nil, fmt.Errorf("the rules loop: %v", cycles)
	}

	local, err := examples.StartLocal(ctx)
	if err != nil {
		return nil, err
	}
	defer local.Close()
	cl := local.Client
	// Both scenarios define the same orders bucket; defining it again with
	// the same definition is fine.
	for _, sc := range []*examples.Scenario{loyalty, userStats} {
		if err := sc.Define(ctx, cl); err != nil {
			return nil, err
		}
	}
	// One worker handles events in stream order, so lastOrder is the time
	// of the user's latest order (with more workers it is a recent one).
	rules, err := examples.RunRules(ctx, local.URL, set, rulenode.WithConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer rules.Stop()
	fmt.Fprintf(w, "store node on %s; Go rule set %q on %v\n", local.URL, set.Name, set.Subjects())

	if err := scenario(ctx, cl); err != nil {
		return nil, err
	}
	if err := cl.Settle(ctx, client.SettleRuleSets(set.Name)); err != nil {
		return nil, err
	}
	res, err := read(ctx, cl)
	if err != nil {
		return nil, err
	}
	res.print(w)
	return res, nil
}

// scenario is the seed's loyalty example (alice's order of 250, paid, then
// shipped) followed by more orders for the statistics.
func scenario(ctx context.Context, cl *client.Client) error {
	orders := cl.Bucket("orders")
	order, err := orders.Insert(ctx, events.Record{"userId": "alice", "total": 250.0})
	if err != nil {
		return err
	}
	for _, status := range []string{"paid", "shipped"} {
		if _, err := orders.Update(ctx, order["id"], events.Record{"status": status}); err != nil {
			return err
		}
	}
	for _, o := range []events.Record{{"userId": "alice", "total": 100.0}, {"userId": "bob", "total": 75.0}} {
		if _, err := orders.Insert(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// read collects the result from the store and the event stream.
func read(ctx context.Context, cl *client.Client) (*result, error) {
	res := &result{Points: map[string]float64{}, Stats: map[string]stats{}, OrderTimes: map[string][]int64{}}
	loyalty, err := cl.Bucket("loyalty").Where(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, r := range loyalty {
		res.Points[r["userId"].(string)] = r["points"].(float64)
	}
	all, err := cl.Bucket("userStats").Where(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, r := range all {
		res.Stats[r["userId"].(string)] = stats{
			OrderCount: r["orderCount"].(float64),
			TotalSpent: r["totalSpent"].(float64),
			LastOrder:  int64(r["lastOrder"].(float64)),
		}
	}
	err = cl.History(ctx, events.EventSubject("orders", events.OpInserted), func(ev *events.Event, _ nats.Header) error {
		user, _ := ev.Record["userId"].(string)
		res.OrderTimes[user] = append(res.OrderTimes[user], ev.Meta.Time)
		return nil
	})
	return res, err
}

func (r *result) print(w io.Writer) {
	for _, user := range slices.Sorted(maps.Keys(r.Points)) {
		fmt.Fprintf(w, "%s's loyalty points: %v\n", user, r.Points[user])
	}
	for _, user := range slices.Sorted(maps.Keys(r.Stats)) {
		s := r.Stats[user]
		fmt.Fprintf(w, "%s: orderCount %v, totalSpent %v, lastOrder %s\n", user, s.OrderCount, s.TotalSpent,
			time.UnixMilli(s.LastOrder).UTC().Format(time.RFC3339Nano))
	}
}

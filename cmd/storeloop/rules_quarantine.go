package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// withJetStream runs fn with a client's JetStream context.
func withJetStream(cmd *cobra.Command, fn func(jetstream.JetStream) error) error {
	return withClient(cmd, func(c *client.Client) error {
		js, err := jetstream.New(c.Conn())
		if err != nil {
			return err
		}
		return fn(js)
	})
}

func rulesQuarantinedCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "quarantined [NAME]",
		Short: "List the quarantined rules (of rule set NAME, or of all)",
		Long: `A rule over its budget (maxWritesPerEvent, maxCascadeWrites) on 3 events
within a minute is quarantined: it stops firing on every rule node of its
set until 'storeloop rules resume NAME RULE'. One line per quarantined rule:
rule set, rule, since when, and the overrun that quarantined it.`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var set string
			if len(a) == 1 {
				set = a[0]
			}
			return withJetStream(cmd, func(js jetstream.JetStream) error {
				states, err := rulenode.Quarantined(cmd.Context(), js, set)
				if err != nil {
					return err
				}
				for _, s := range states {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s quarantined since=%s reason=%s\n",
						s.RuleSet, s.Rule, s.Since.UTC().Format(time.RFC3339), s.Reason)
				}
				return nil
			})
		},
	}
}

func rulesResumeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resume NAME RULE",
		Short: "Lift the quarantine of rule RULE of rule set NAME on every rule node",
		Long: `The rule fires again on events from now on (not on those it skipped while
quarantined), and its count of budget overruns starts from zero.

Exit codes: 0 resumed, 1 the rule is not quarantined, 2 invalid names.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return withJetStream(cmd, func(js jetstream.JetStream) error {
				err := rulenode.Resume(cmd.Context(), js, a[0], a[1])
				if errors.Is(err, events.ErrBadRequest) {
					return usageError{err}
				}
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s resumed\n", a[0], a[1])
				}
				return err
			})
		},
	}
}

// quarantineStatus returns the STATUS cell of rules ls for a rule set:
// "ok", or "quarantined: " and its quarantined rules.
func quarantineStatus(ctx context.Context, cl *client.Client) (func(set string) string, error) {
	js, err := jetstream.New(cl.Conn())
	if err != nil {
		return nil, err
	}
	states, err := rulenode.Quarantined(ctx, js, "")
	if err != nil {
		return nil, err
	}
	bySet := map[string][]string{}
	for _, st := range states {
		bySet[st.RuleSet] = append(bySet[st.RuleSet], st.Rule)
	}
	return func(set string) string {
		if rules := bySet[set]; len(rules) > 0 {
			return "quarantined: " + strings.Join(rules, ",")
		}
		return "ok"
	}, nil
}

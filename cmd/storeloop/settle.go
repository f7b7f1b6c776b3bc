package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/client"
)

func init() { rootCmd.AddCommand(settleCmd()) }

// defaultSettleTimeout bounds `storeloop settle` unless --timeout says otherwise.
const defaultSettleTimeout = 30 * time.Second

func settleCmd() *cobra.Command {
	var timeout time.Duration
	var ruleSets []string
	cmd := &cobra.Command{
		Use:   "settle",
		Short: "Wait until the rules have finished reacting to the writes made so far",
		Long: `Wait until every rule set's consumer (or those given with --rule-set) has
been delivered and has acknowledged every event it matches, and the store
node has no command in flight, on several consecutive checks. Scripts and
demos use it between writing and reading what the rules derived.
Exits 0 when settled, 1 when not settled within --timeout.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			return withClient(cmd, func(c *client.Client) error {
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				defer cancel()
				err := c.Settle(ctx, client.SettleRuleSets(ruleSets...))
				if err != nil && cmd.Context().Err() == nil && ctx.Err() != nil {
					// Not settling in time is the command's answer, not an
					// unavailable store: exit 1, with what was still moving.
					return fmt.Errorf("not settled within %s: %v", timeout, err)
				}
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), "settled")
				return err
			})
		},
	}
	// This --timeout bounds the whole wait; it shadows the global one,
	// which bounds each request and keeps its default here.
	cmd.Flags().DurationVar(&timeout, "timeout", defaultSettleTimeout, "how long to wait")
	cmd.Flags().StringSliceVar(&ruleSets, "rule-set", nil, "wait for this rule set only (repeatable)")
	return cmd
}

package main

import (
	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/internal/demo"
)

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "demo",
		Short: "Run the seed's e-commerce example on an embedded NATS server, a store node and a rule node",
		Long: `demo starts an embedded NATS server (JetStream in a temporary directory),
a store node and a rule node in this process, runs the complete e-commerce
example of "Store-Driven Rules" (inventory deducted on confirmation, loyalty
points on shipment), and prints the results, the causal chain of every
cascade and the trace of one. Then it deploys the rule set (rules deploy),
runs it as a deployed set (rulenode --ruleset) and deploys a second version
while it runs: an order shipped before earns version 1's points, one shipped
after version 2's, without a restart. It exits non-zero if a result differs
from the seed's (Laptop 48, Mouse 195, Alice 274 points) or the change does
not take effect.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demo.Run(cmd.Context(), cmd.OutOrStdout())
		},
	})
}

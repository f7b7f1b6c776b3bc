package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

func init() { rootCmd.AddCommand(statusCmd()) }

// statusOutput is the leader's status with every store node's role,
// progress and lease beside it.
type statusOutput struct {
	events.StatusResult
	Nodes []events.NodeStatus `json:"nodes"`
}

func statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the store's progress and health (last sequence, commands in flight, why writes are refused, quarantined messages) and every store node: leader or standby, lag in events, lease expiry",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(c *client.Client) error {
				nodes, nodesErr := c.Nodes(cmd.Context())
				st, err := c.Status(cmd.Context())
				if err != nil && nodesErr != nil {
					return err
				}
				if err != nil {
					// No leader serves (a failover under way): the nodes say why.
					st.Reason = err.Error()
				}
				return errors.Join(writeJSON(cmd.OutOrStdout(), statusOutput{StatusResult: st, Nodes: nodes}), err)
			})
		},
	}
}

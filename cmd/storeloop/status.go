package main

import (
	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/client"
)

func init() { rootCmd.AddCommand(statusCmd()) }

func statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the store node's progress and health: last sequence, commands in flight, why writes are refused, quarantined messages",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(c *client.Client) error {
				st, err := c.Status(cmd.Context())
				if err != nil {
					return err
				}
				return writeJSON(cmd.OutOrStdout(), st)
			})
		},
	}
}

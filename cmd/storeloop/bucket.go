package main

import (
	"bytes"
	"io"
	"os"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

func init() {
	bucketCmd := &cobra.Command{Use: "bucket", Short: "Manage bucket definitions"}
	bucketCmd.AddCommand(defineCmd())
	rootCmd.AddCommand(bucketCmd, bucketsCmd(), insertCmd(), getCmd(), updateCmd(), upsertCmd(),
		deleteCmd(), queryCmd(), countCmd(), aggregateCmd())
}

// withClient runs fn with a client dialled from the global flags.
func withClient(cmd *cobra.Command, fn func(*client.Client) error) error {
	c, err := dial(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

func defineCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "define -f FILE",
		Short: "Define buckets from a YAML or JSON file (- for stdin): one definition, or {buckets: [...]}",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("-f FILE is required")
			}
			defs, single, err := readBucketDefs(cmd.InOrStdin(), file)
			if err != nil {
				return err
			}
			return withClient(cmd, func(c *client.Client) error {
				results := make([]events.DefineResult, 0, len(defs))
				for _, def := range defs {
					if err := c.Define(cmd.Context(), def); err != nil {
						return err
					}
					results = append(results, events.DefineResult{Bucket: def.Bucket})
				}
				if single {
					return writeJSON(cmd.OutOrStdout(), results[0])
				}
				return writeJSON(cmd.OutOrStdout(), results)
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "bucket definition(s), YAML or JSON; - reads stdin")
	return cmd
}

// readBucketDefs reads one BucketDef, or a list under "buckets" (the
// examples' buckets.yaml), from file (or stdin for "-"). JSON is YAML, so
// one strict YAML decoder reads both. single reports the first form.
func readBucketDefs(stdin io.Reader, file string) (defs []events.BucketDef, single bool, err error) {
	var data []byte
	if file == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, false, usageError{err}
	}
	var probe map[string]any
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return nil, false, usagef("%s: %v", file, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if _, ok := probe["buckets"]; ok {
		var list struct {
			Buckets []events.BucketDef `yaml:"buckets"`
		}
		if err := dec.Decode(&list); err != nil {
			return nil, false, usagef("%s: %v", file, err)
		}
		if len(list.Buckets) == 0 {
			return nil, false, usagef("%s: buckets is empty", file)
		}
		return list.Buckets, false, nil
	}
	var def events.BucketDef
	if err := dec.Decode(&def); err != nil {
		return nil, false, usagef("%s: %v", file, err)
	}
	return []events.BucketDef{def}, true, nil
}

func bucketsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "buckets",
		Short: "List buckets with their definitions and record counts",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(c *client.Client) error {
				list, err := c.Buckets(cmd.Context())
				if err != nil {
					return err
				}
				if list == nil {
					list = []events.BucketInfo{}
				}
				return writeJSON(cmd.OutOrStdout(), list)
			})
		},
	}
}

func insertCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "insert BUCKET JSON",
		Short: "Insert a record and print it as stored",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			rec, err := parseObject("record", a[1])
			if err != nil {
				return err
			}
			return withClient(cmd, func(c *client.Client) error {
				v, err := c.Bucket(a[0]).Insert(cmd.Context(), rec)
				return show(cmd, v, err)
			})
		},
	}
}

// keyFlag adds --string-key to cmd and returns a function that parses a key.
func keyFlag(cmd *cobra.Command) func(string) any {
	s := cmd.Flags().Bool("string-key", false, "treat a numeric KEY as a string")
	return func(k string) any { return parseKey(k, *s) }
}

// show prints a command's result as JSON, or passes its error on.
func show(cmd *cobra.Command, v any, err error) error {
	if err != nil {
		return err
	}
	return writeJSON(cmd.OutOrStdout(), v)
}

func getCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get BUCKET KEY",
		Short: "Print the record under KEY, or null",
		Args:  args(cobra.ExactArgs(2)),
	}
	key := keyFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		return withClient(cmd, func(c *client.Client) error {
			v, err := c.Bucket(a[0]).Get(cmd.Context(), key(a[1]))
			return show(cmd, v, err)
		})
	}
	return cmd
}

func updateCmd() *cobra.Command {
	var incr string
	var expect int64
	cmd := &cobra.Command{
		Use:   "update BUCKET KEY JSON",
		Short: "Merge JSON into the record under KEY and print the new record",
		Args:  args(cobra.ExactArgs(3)),
	}
	key := keyFlag(cmd)
	cmd.Flags().StringVar(&incr, "increment", "", `JSON object of numbers to add, e.g. {"stock": -1}`)
	cmd.Flags().Int64Var(&expect, "expect-version", 0, "fail with conflict unless _version is N")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		changes, err := parseObject("changes", a[2])
		if err != nil {
			return err
		}
		by, err := parseIncrement(incr)
		if err != nil {
			return err
		}
		var opts []client.UpdateOption
		if by != nil {
			opts = append(opts, client.Increment(by))
		}
		if cmd.Flags().Changed("expect-version") {
			opts = append(opts, client.ExpectVersion(expect))
		}
		return withClient(cmd, func(c *client.Client) error {
			v, err := c.Bucket(a[0]).Update(cmd.Context(), key(a[1]), changes, opts...)
			return show(cmd, v, err)
		})
	}
	return cmd
}

func upsertCmd() *cobra.Command {
	var incr string
	cmd := &cobra.Command{
		Use:   "upsert BUCKET KEY [JSON]",
		Short: "Insert the record under KEY or merge JSON into it, atomically",
		Args:  args(cobra.RangeArgs(2, 3)),
	}
	key := keyFlag(cmd)
	cmd.Flags().StringVar(&incr, "increment", "", `JSON object of numbers to add, e.g. {"points": 10}`)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		var rec events.Record
		if len(a) == 3 {
			var err error
			if rec, err = parseObject("record", a[2]); err != nil {
				return err
			}
		}
		by, err := parseIncrement(incr)
		if err != nil {
			return err
		}
		var opts []client.UpsertOption
		if by != nil {
			opts = append(opts, client.Increment(by))
		}
		return withClient(cmd, func(c *client.Client) error {
			v, err := c.Bucket(a[0]).Upsert(cmd.Context(), key(a[1]), rec, opts...)
			return show(cmd, v, err)
		})
	}
	return cmd
}

func deleteCmd() *cobra.Command {
	var expect int64
	cmd := &cobra.Command{
		Use:   "delete BUCKET KEY",
		Short: "Delete the record under KEY; prints whether there was one",
		Args:  args(cobra.ExactArgs(2)),
	}
	key := keyFlag(cmd)
	cmd.Flags().Int64Var(&expect, "expect-version", 0, "fail with conflict unless _version is N")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		var opts []client.DeleteOption
		if cmd.Flags().Changed("expect-version") {
			opts = append(opts, client.ExpectVersion(expect))
		}
		return withClient(cmd, func(c *client.Client) error {
			deleted, err := c.Bucket(a[0]).Delete(cmd.Context(), key(a[1]), opts...)
			return show(cmd, events.DeleteResult{Deleted: deleted}, err)
		})
	}
	return cmd
}

// whereFlag adds --where to cmd and returns a function that parses it.
func whereFlag(cmd *cobra.Command) func() (events.Where, error) {
	s := cmd.Flags().String("where", "", `JSON filter, e.g. {"status": "paid", "total": {"$gt": 100}}`)
	return func() (events.Where, error) { return parseObject("--where", *s) }
}

func queryCmd() *cobra.Command {
	var limit int
	var after string
	cmd := &cobra.Command{
		Use:   "query BUCKET",
		Short: "Print one page of matching records and the cursor of the next",
		Args:  args(cobra.ExactArgs(1)),
	}
	where := whereFlag(cmd)
	cmd.Flags().IntVar(&limit, "limit", 0, "records per page (0: the store's default)")
	cmd.Flags().StringVar(&after, "after", "", "cursor from a previous page's nextCursor")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		w, err := where()
		if err != nil {
			return err
		}
		if limit < 0 {
			return usagef("--limit must be >= 0")
		}
		return withClient(cmd, func(c *client.Client) error {
			res, err := c.Bucket(a[0]).Query(cmd.Context(), w, client.Limit(limit), client.After(after))
			if err == nil && res.Records == nil {
				res.Records = []events.Record{}
			}
			return show(cmd, res, err)
		})
	}
	return cmd
}

func countCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "count BUCKET",
		Short: "Print the number of matching records",
		Args:  args(cobra.ExactArgs(1)),
	}
	where := whereFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		w, err := where()
		if err != nil {
			return err
		}
		return withClient(cmd, func(c *client.Client) error {
			v, err := c.Bucket(a[0]).Count(cmd.Context(), w)
			return show(cmd, v, err)
		})
	}
	return cmd
}

func aggregateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "aggregate BUCKET sum|avg|min|max FIELD",
		Short: "Print an aggregate of FIELD over matching records, or null",
		Args:  args(cobra.ExactArgs(3)),
	}
	where := whereFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		switch a[1] {
		case "sum", "avg", "min", "max":
		default:
			return usagef("unknown aggregate %q: want sum, avg, min or max", a[1])
		}
		w, err := where()
		if err != nil {
			return err
		}
		return withClient(cmd, func(c *client.Client) error {
			v, err := c.Bucket(a[0]).Aggregate(cmd.Context(), a[1], a[2], w)
			return show(cmd, v, err)
		})
	}
	return cmd
}

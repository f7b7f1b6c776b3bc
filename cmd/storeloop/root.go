package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/daemon"
)

// Exit codes.
const (
	exitOK          = 0
	exitCommand     = 1 // the store (or the command) failed
	exitUsage       = 2 // bad arguments, flags or input files
	exitUnavailable = 3 // NATS or the store node cannot be reached
)

// Defaults of the global flags, and the environment variables that
// stand in for them (as for the daemons).
const (
	defaultNATSURL = "nats://127.0.0.1:4222"
	envNATSURL     = "STORELOOP_NATS"
	envPrefix      = "STORELOOP_PREFIX"
	envStream      = "STORELOOP_STREAM"
	envCreds       = daemon.EnvCreds
	envTLSCA       = daemon.EnvTLSCA
	envClientCert  = daemon.EnvClientCert
	envClientKey   = daemon.EnvClientKey
)

// rootCmd is the storeloop command. Other files of this package add their
// subcommands with func init() { rootCmd.AddCommand(...) }, write to
// cmd.OutOrStdout(), read cmd.InOrStdin(), use cmd.Context(), and get a
// client with dial(cmd) (or the URL with natsURL(cmd)).
var rootCmd = &cobra.Command{
	Use:           "storeloop",
	Short:         "Work with a storeloop store: buckets, records, events",
	SilenceErrors: true,
	SilenceUsage:  true,
	// Arguments and flags are validated before this hook runs, so an error
	// returned by Execute without it having run is a usage error.
	PersistentPreRunE: func(*cobra.Command, []string) error {
		global.started = true
		return nil
	},
}

// global holds the persistent flags.
var global struct {
	nats    string
	prefix  string
	stream  string
	timeout time.Duration
	started bool
	// failover is --failover-wait (client.WithFailoverWait).
	failover time.Duration
}

func init() {
	pf := rootCmd.PersistentFlags()
	pf.StringVar(&global.nats, "nats", defaultNATSURL, "NATS URL (env "+envNATSURL+")")
	pf.StringVar(&global.prefix, "prefix", events.DefaultCommandPrefix, "command subject prefix (env "+envPrefix+")")
	pf.StringVar(&global.stream, "stream", events.DefaultStream, "event stream name (env "+envStream+")")
	pf.DurationVar(&global.timeout, "timeout", client.DefaultTimeout, "timeout of each request")
	pf.DurationVar(&global.failover, "failover-wait", client.DefaultFailoverWait, "send a command again for this long while no store node serves it or the stream elects a leader (0: only the retries)")
	pf.String("creds", "", "NATS credentials file, e.g. client.creds of storeloop auth init (env "+envCreds+")")
	pf.String("tls-ca", "", daemon.TrustCA+" (env "+envTLSCA+")")
	pf.String("tls-client-cert", "", daemon.ClientCertUsage+" (env "+envClientCert+")")
	pf.String("tls-client-key", "", daemon.ClientKeyUsage+" (env "+envClientKey+")")
	rootCmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
}

// streamName returns --stream, else $STORELOOP_STREAM, else the default.
func streamName(cmd *cobra.Command) string { return flagOrEnv(cmd, "stream", envStream) }

// natsURL returns --nats, else $STORELOOP_NATS, else the default.
func natsURL(cmd *cobra.Command) string { return flagOrEnv(cmd, "nats", envNATSURL) }

// flagOrEnv returns the string flag name when given, else the environment
// variable env when set, else the flag's default.
func flagOrEnv(cmd *cobra.Command, name, env string) string {
	f := cmd.Flag(name)
	if f.Changed {
		return f.Value.String()
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	return f.Value.String()
}

// dial connects a client with the global flags; the command should Close it.
func dial(cmd *cobra.Command) (*client.Client, error) {
	conn := auth.ConnConfig{
		Creds: flagOrEnv(cmd, "creds", envCreds),
		CA:    flagOrEnv(cmd, "tls-ca", envTLSCA),
		Cert:  flagOrEnv(cmd, "tls-client-cert", envClientCert),
		Key:   flagOrEnv(cmd, "tls-client-key", envClientKey),
	}
	natsOpts, err := conn.NATSOptions()
	if err != nil {
		return nil, usageError{err}
	}
	return client.Connect(natsURL(cmd),
		client.WithCommandPrefix(flagOrEnv(cmd, "prefix", envPrefix)),
		client.WithStream(streamName(cmd)),
		client.WithTimeout(global.timeout),
		client.WithFailoverWait(global.failover),
		client.WithName("storeloop-cli"),
		client.WithNATSOptions(natsOpts...))
}

// usageError marks a mistake of the user's invocation (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// execute runs the CLI with args and returns the process exit code. Errors
// are printed to stderr as "error: ...".
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	resetCommands(rootCmd, ctx)
	rootCmd.SetArgs(args)
	rootCmd.SetIn(stdin)
	rootCmd.SetOut(stdout)
	rootCmd.SetErr(stderr)
	cmd, err := rootCmd.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "error: %v\n", err)
	code := exitCode(err, global.started)
	if code == exitUsage {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// exitStatus is an error whose command decides its exit code itself.
type exitStatus struct {
	code int
	err  error
}

func (e exitStatus) Error() string { return e.err.Error() }
func (e exitStatus) Unwrap() error { return e.err }

// exitCode classifies err; started tells whether a command began to run.
func exitCode(err error, started bool) int {
	var ue usageError
	var es exitStatus
	switch {
	case errors.As(err, &es):
		return es.code
	case !started, errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, events.ErrUnavailable), errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, context.DeadlineExceeded):
		return exitUnavailable
	}
	return exitCommand
}

// resetCommands puts every flag back to its default and every command on
// ctx, so that execute can run more than once in a process (tests).
func resetCommands(c *cobra.Command, ctx context.Context) {
	global.started = false
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.SetContext(ctx)
		reset := func(f *pflag.Flag) {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				_ = sv.Replace(nil)
			} else {
				_ = f.Value.Set(f.DefValue)
			}
			f.Changed = false
		}
		c.Flags().VisitAll(reset)
		c.PersistentFlags().VisitAll(reset)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(c)
}

// args wraps a cobra argument validator so its errors are usage errors.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// writeJSON prints v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

var numberKeyRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?$`)

// parseKey reads a record key from the command line: a decimal number is a
// number key unless stringKey.
func parseKey(s string, stringKey bool) any {
	if !stringKey && numberKeyRE.MatchString(s) {
		return json.Number(s)
	}
	return s
}

// parseObject parses a JSON object argument; numbers keep their exact text.
func parseObject(name, s string) (map[string]any, error) {
	if s == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, usagef("%s: not a JSON object: %v", name, err)
	}
	if dec.More() {
		return nil, usagef("%s: trailing data after the JSON object", name)
	}
	if m == nil {
		return nil, usagef("%s: not a JSON object", name)
	}
	return m, nil
}

// parseIncrement parses --increment: a JSON object of field → number.
func parseIncrement(s string) (map[string]float64, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]float64
	if err := json.Unmarshal([]byte(s), &m); err != nil || m == nil {
		return nil, usagef("--increment: want a JSON object of numbers, like {\"points\": 5}")
	}
	return m, nil
}

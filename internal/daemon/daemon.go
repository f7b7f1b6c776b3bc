// Package daemon holds what the storeloop daemons (storenode, rulenode)
// share: flag defaults from the environment, structured logging, the
// health/metrics HTTP endpoint, and signal handling.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/storeloop/storeloop/tracing"
)

// Env returns the environment variable name, or def when it is unset.
// Flags use it for their defaults, so a flag on the command line wins.
func Env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// NewLogger returns a slog logger writing to stderr at level ("debug",
// "info", "warn", "error") in format ("text" or "json").
func NewLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// SignalContext returns a context cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// HTTP serves /healthz (the process is up), /readyz (200 with ready's text
// when it returns no error, 503 with the error otherwise)
// and, when metrics is not nil, /metrics on addr. It returns the bound
// address (useful with port 0) and a shutdown function.
func HTTP(addr string, ready func() (string, error), metrics http.Handler, log *slog.Logger) (string, func(context.Context) error, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		text, err := ready()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, text)
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("http %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	return ln.Addr().String(), srv.Shutdown, nil
}

// Common holds the flags every daemon has: logging and trace export.
type Common struct {
	OTLP, LogLevel, LogFormat string
}

// Register adds --otlp, --log-level and --log-format to fs.
func (c *Common) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.OTLP, "otlp", Env("STORELOOP_OTLP", ""), "OTLP/HTTP endpoint for traces, e.g. http://127.0.0.1:4318 (env STORELOOP_OTLP; OTEL_* variables work too)")
	fs.StringVar(&c.LogLevel, "log-level", Env("STORELOOP_LOG_LEVEL", "info"), "debug, info, warn or error (env STORELOOP_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", Env("STORELOOP_LOG_FORMAT", "text"), "text or json (env STORELOOP_LOG_FORMAT)")
}

// Start builds the logger and sets up tracing and metrics for service.
// The returned shutdown flushes the telemetry.
func (c *Common) Start(ctx context.Context, service string) (*slog.Logger, func(context.Context) error, error) {
	log, err := NewLogger(c.LogLevel, c.LogFormat)
	if err != nil {
		return nil, nil, err
	}
	var opts []tracing.Option
	if c.OTLP != "" {
		opts = append(opts, tracing.WithOTLPEndpoint(c.OTLP))
	}
	shutdown, err := tracing.Setup(ctx, service, opts...)
	if err != nil {
		return nil, nil, err
	}
	return log, shutdown, nil
}

// SetFromEnv gives the flags of fs named in vars (flag name → environment
// variable) their value from the environment, before fs.Parse, so that the
// command line still wins. The value goes through the flag's own parser: a
// malformed number or duration is an error naming the variable, not a
// silent default.
func SetFromEnv(fs *flag.FlagSet, vars map[string]string) error {
	for name, env := range vars {
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(name, v); err != nil {
				return fmt.Errorf("%s=%q: %w", env, v, err)
			}
		}
	}
	return nil
}

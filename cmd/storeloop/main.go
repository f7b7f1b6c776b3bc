// Command storeloop is the user CLI of a storeloop store: bucket operations,
// tailing the event stream, and the tools other files of this package add.
//
// Exit codes: 0 ok, 1 the store refused the command, 2 usage error, 3 the
// store or NATS is unavailable.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

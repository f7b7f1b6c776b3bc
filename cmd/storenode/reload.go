package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/storeloop/storeloop/storenode"
)

// reloadOnHangup makes the embedded server enforce --auth DIR as it is on
// disk at every SIGHUP (users revoked by storeloop auth user --force),
// until ctx ends.
func (f *flags) reloadOnHangup(ctx context.Context, srv *server.Server, mode storenode.FsyncMode, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := f.embedded(mode)
		if err == nil {
			err = storenode.ReloadEmbedded(srv, cfg)
		}
		if err != nil {
			log.Error("auth directory not reloaded: the server enforces it as before", "auth", f.authDir, "err", err)
			continue
		}
		log.Info("auth directory reloaded", "auth", f.authDir)
	}
}

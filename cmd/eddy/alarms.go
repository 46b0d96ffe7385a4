package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/eddy-faas/eddy/internal/alarms"
	"github.com/eddy-faas/eddy/internal/api"
	"github.com/eddy-faas/eddy/internal/store"
)

// The built-in alarms package (docs/alarms.md): its feed actions run in
// the controller's process (api.Builtins), its provider in the schedulers
// (in standalone's one process), its state in the store.

// newAlarmsFeed builds the feed actions a controller serves; changed is
// told of every alarm written (the provider of the same process, if any).
func newAlarmsFeed(st store.Store, changed func(), log *slog.Logger) api.Builtins {
	docs := alarms.StoreDocs{S: st}
	f, err := alarms.NewFeed(alarms.FeedDeps{
		Docs: docs, Identities: st, Triggers: docs, Now: time.Now, Changed: changed,
		Log: log.With("role", "alarms-feed"),
	})
	if err != nil {
		panic(err) // every dependency is given above
	}
	return f
}

// seedAlarms creates the shared package /whisk.system/alarms and its feed
// actions if they are missing (every controller does, at every start).
func seedAlarms(ctx context.Context, st store.Store) error {
	return alarms.Seed(ctx, st, time.Now().UnixMilli())
}

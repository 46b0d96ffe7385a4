package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/eddy-faas/eddy/internal/alarms"
	"github.com/eddy-faas/eddy/internal/api"
	"github.com/eddy-faas/eddy/internal/catalog"
	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/events"
	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
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

// alarmsFirer fires alarm triggers through the normal fire path (the
// trigger's active rules, their actions resolved through the package
// catalog and invoked through inv, the trigger record), as the trigger's
// owner. cat is the process's catalog over st.
func alarmsFirer(limits whisk.SystemLimits, st store.Store, cat *catalog.Catalog, inv events.Invoker, log *slog.Logger) alarms.Firer {
	_, firer := newEvents(limits, st, events.CatalogActions{Catalog: cat}, inv, log.With("role", "alarms"))
	return firer
}

// newAlarmsProvider builds the alarms provider of scheduler id: it owns
// alarm shards through s (the scheduler's lease) and fires through firer.
func newAlarmsProvider(id string, s *cluster.Session, st store.Store, firer alarms.Firer, changed chan struct{},
	log *slog.Logger) (*alarms.Provider, error) {
	docs := alarms.StoreDocs{S: st}
	return alarms.New(alarms.Config{ID: id, Now: time.Now}, alarms.Deps{
		Docs: docs, Identities: st, Records: st, Firer: firer, Deleter: docs, Shards: s,
		Changed: changed, Log: log.With("role", "alarms"),
	})
}

// schedulerFireLimits are the limits of a scheduler's alarms controller:
// the system defaults with the scheduler's namespace container limit.
func schedulerFireLimits(t *tuning) whisk.SystemLimits {
	l := whisk.DefaultSystemLimits()
	l.ConcurrentContainers = t.nsContainers
	if t.firesPerMinute > 0 {
		l.FiresPerMinute = t.firesPerMinute
	}
	return l
}

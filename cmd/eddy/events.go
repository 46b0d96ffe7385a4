package main

import (
	"log/slog"
	"time"

	"github.com/eddy-faas/eddy/internal/events"
	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// newEvents builds the trigger and rule service and the trigger firer of a
// controller: rules resolve their actions with resolver, fires invoke
// through inv.
func newEvents(limits whisk.SystemLimits, st store.Store, resolver events.ActionResolver, inv events.Invoker,
	log *slog.Logger) (*events.Service, *events.Firer) {
	svc := events.NewService(st, resolver)
	firer := events.NewFirer(limits, events.FirerDeps{
		Log: log.With("role", "events"), Triggers: svc, Records: st, Actions: resolver, Invoker: inv, Now: time.Now,
	})
	return svc, firer
}

package controller

import (
	"context"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// ActionGetter reads one action (store.Store has it).
type ActionGetter interface {
	GetAction(ctx context.Context, namespace, name string) (whisk.Action, error)
}

// StoreComponents resolves components on the store alone, for as long as
// Eddy has no packages: an action of the caller's default package
// resolves, one of another namespace is Forbidden (OpenWhisk never shares
// default-package actions), and a packaged one does not exist.
type StoreComponents struct{ Actions ActionGetter }

// Component implements Components.
func (s StoreComponents) Component(ctx context.Context, caller whisk.Identity, q whisk.QualifiedName) (whisk.Action, error) {
	const op = "controller.StoreComponents"
	if q.Namespace != caller.Namespace {
		return whisk.Action{}, whisk.E(op, whisk.Forbidden, whisk.MsgNotAuthorized(q.Path()), nil)
	}
	if q.Package != "" {
		return whisk.Action{}, whisk.E(op, whisk.NotFound, whisk.MsgNotFound, nil)
	}
	return s.Actions.GetAction(ctx, q.Namespace, q.Name)
}

package events

import (
	"context"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// ActionGetter reads an action of a namespace's default package
// (store.Store has it).
type ActionGetter interface {
	GetAction(ctx context.Context, namespace, name string) (whisk.Action, error)
}

// DirectActions resolves rule references to actions of the caller's own
// default package only: a packaged action is NotFound and another
// namespace's action Forbidden. It stands in for the package catalog
// (which resolves packages, bindings and shared packages) where that is
// not wired.
type DirectActions struct{ Store ActionGetter }

// ResolveAction implements ActionResolver.
func (d DirectActions) ResolveAction(ctx context.Context, caller whisk.Identity, ref whisk.EntityPath) (whisk.Action, error) {
	const op = "events.DirectActions"
	if ref.Namespace() != caller.Namespace {
		return whisk.Action{}, whisk.E(op, whisk.Forbidden, whisk.MsgNotEntitledTo(ref.String()), nil)
	}
	if ref.Package() != "" {
		return whisk.Action{}, whisk.E(op, whisk.NotFound, whisk.MsgNotFound, nil)
	}
	return d.Store.GetAction(ctx, ref.Path, ref.Name)
}

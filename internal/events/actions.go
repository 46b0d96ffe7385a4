package events

import (
	"context"

	"github.com/eddy-faas/eddy/internal/catalog"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// CatalogActions resolves rule references through the package catalog:
// the caller's own actions, actions of packages it may read (shared ones
// of other namespaces included) and of its bindings, with the packages'
// parameters merged in; a private action of another namespace is
// Forbidden.
type CatalogActions struct{ Catalog *catalog.Catalog }

// ResolveAction implements ActionResolver.
func (c CatalogActions) ResolveAction(ctx context.Context, caller whisk.Identity, ref whisk.EntityPath) (whisk.ResolvedAction, error) {
	return c.Catalog.Action(ctx, caller.Namespace, whisk.EntityName{Namespace: ref.Namespace(), Package: ref.Package(), Name: ref.Name})
}

package controller

import (
	"context"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Components resolves the actions sequences and conductor actions name
// (*catalog.Catalog has it).
type Components interface {
	// Action returns the action ref names as a caller of namespace caller
	// may run it ("_" is caller), with its package's and binding's
	// parameters merged under its own: NotFound when it does not exist,
	// Forbidden when the caller may not read it.
	Action(ctx context.Context, caller string, ref whisk.EntityName) (whisk.ResolvedAction, error)
}

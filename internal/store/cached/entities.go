package cached

import (
	"bytes"
	"context"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// entityKey names one cached entity.
type entityKey struct {
	kind            whisk.EntityKind
	namespace, name string
}

// GetEntity answers from the cache, or from the inner store, as GetAction
// does: packages (an invocation of a packaged action reads its package),
// API documents (every call of an API route) and triggers (every fire)
// are on request paths.
func (s *Store) GetEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string) (whisk.Entity, error) {
	k := entityKey{kind, namespace, name}
	if e, err, ok := s.ents.get(k, s.cfg.Now()); ok {
		s.entHits.Add(1)
		return cloneEntity(e), err
	}
	s.entMisses.Add(1)
	return load(ctx, s.ents, k, func(gen uint64) (whisk.Entity, error) {
		ctx, cancel := s.readCtx(ctx, s.ents.hasStale(k, s.cfg.Now()))
		defer cancel()
		e, err := s.inner.GetEntity(ctx, kind, namespace, name)
		if exp, ok := s.expiry(err); ok {
			s.ents.put(k, cloneEntity(e), err, exp, gen)
		} else if whisk.IsKind(err, whisk.NotFound) {
			s.ents.drop(k)
		} else if unreachable(err) {
			if old, ok := s.ents.stale(k, s.cfg.Now()); ok {
				return cloneEntity(old), nil
			}
		}
		return e, err
	}, cloneEntity)
}

// PutEntity writes through and drops the cached entity.
func (s *Store) PutEntity(ctx context.Context, e whisk.Entity, expectRev int64) (whisk.Entity, error) {
	out, err := s.inner.PutEntity(ctx, e, expectRev)
	s.ents.invalidate(entityKey{e.Kind, e.Namespace, e.Name})
	return out, err
}

// DeleteEntity deletes through and drops the cached entity.
func (s *Store) DeleteEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string, expectRev int64) (whisk.Entity, error) {
	out, err := s.inner.DeleteEntity(ctx, kind, namespace, name, expectRev)
	s.ents.invalidate(entityKey{kind, namespace, name})
	return out, err
}

// ApplyEntities writes through and drops every entity it touches.
func (s *Store) ApplyEntities(ctx context.Context, ops []store.EntityOp) ([]whisk.Entity, error) {
	out, err := s.inner.ApplyEntities(ctx, ops)
	for _, o := range ops {
		s.ents.invalidate(entityKey{o.Entity.Kind, o.Entity.Namespace, o.Entity.Name})
	}
	return out, err
}

// ListEntities is not cached.
func (s *Store) ListEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f store.EntityFilter) ([]whisk.Entity, error) {
	return s.inner.ListEntities(ctx, kind, namespace, f)
}

// CountEntities is not cached.
func (s *Store) CountEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f store.EntityFilter) (int, error) {
	return s.inner.CountEntities(ctx, kind, namespace, f)
}

// cloneEntity copies e's document, so that the copy shares no memory with e.
func cloneEntity(e whisk.Entity) whisk.Entity {
	e.Doc = bytes.Clone(e.Doc)
	return e
}

// entityBytes is about what a cached entity holds in memory.
func entityBytes(e whisk.Entity) int { return 256 + len(e.Name) + len(e.Doc) }

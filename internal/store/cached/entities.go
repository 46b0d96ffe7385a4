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
// does: packages (an invocation of a packaged action reads its package)
// and API documents (every call of an API route) are on request paths.
// Triggers are read through, never cached: a trigger holds its rules'
// status, and a fire that read a stale one on another controller would
// answer 204 for a rule just enabled there (the fire lost) or run a rule
// just disabled. Fires are few (triggers_per_minute), so the read costs
// little.
func (s *Store) GetEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string) (whisk.Entity, error) {
	if kind == whisk.EntityTrigger {
		return s.inner.GetEntity(ctx, kind, namespace, name)
	}
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

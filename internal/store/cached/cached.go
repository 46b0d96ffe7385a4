// Package cached wraps a store.Store with an in-memory cache of the reads
// on request paths: IdentityByUUID (every authenticated API call),
// GetAction (every invocation) and GetEntity (packages of packaged actions,
// API documents; triggers are read through, see GetEntity). Everything
// else goes straight to the inner store. Entities follow the actions' rules below (PutEntity, DeleteEntity
// and ApplyEntities drop what they touch).
//
// Consistency:
//   - In one process, writes made through the wrapper are seen at once:
//     PutIdentity, DeleteIdentity, PutAction and DeleteAction drop the
//     entry they touch, Put/DeleteNamespaceLimits every cached identity
//     (whether they succeed or fail), and a read that was in flight during
//     the write does not put its older answer into the cache. So every
//     part of a process must share the one wrapper (or write through it).
//   - Writes made by other processes (the other controllers of a cluster,
//     or an admin tool writing the database) are seen once the cached entry
//     expires: after Config.TTL (default 2 s) at most.
//   - Optimistic concurrency is untouched: PutAction's compare-and-swap on
//     Rev always runs in the inner store, so a cached, older action can at
//     worst make an update fail with a Conflict (which the API reports as a
//     concurrent update), never overwrite a newer revision.
//   - Misses (NotFound) are cached only when Config.NegativeTTL is set, and
//     then for that long. In a cluster keep it at 0 or very short: an action
//     created through another process stays "not found" here until the
//     cached miss expires.
//   - Stale on error, only when Config.StaleIfError is set: when the inner
//     store cannot be reached (its error is whisk.Unavailable or
//     whisk.Timeout: the database is down or restarting), an identity or
//     action whose entry expired at most StaleIfError ago is served instead
//     of the error, so that a process rides out a brief database outage for
//     what it has read recently. While the database is unreachable nobody
//     can change it, so such an answer misses only writes of other
//     processes made in the last TTL+StaleIfError before the outage (a
//     write through this wrapper drops the entry, so it is never served
//     stale). Misses are never served stale. With StaleIfError 0 (the
//     default) an entry is never served past its TTL. A server that hangs
//     (rather than refusing connections) is noticed only when the inner
//     read times out; Config.StaleWait bounds that wait when an expired
//     entry could stand in, so a read then takes at most StaleWait (and a
//     database slower than that is treated as unreachable for entries in
//     their stale window).
//
// The cache holds at most Config.MaxEntries identities and as many actions,
// evicting the least recently used. Values are copied in and out, so a
// caller that changes a returned action's slices does not change the cache.
// A Store is safe for concurrent use.
package cached

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Defaults for the zero fields of Config.
const (
	DefaultTTL        = 2 * time.Second
	DefaultMaxEntries = 10000
	// DefaultMaxActionBytes is Config.MaxActionBytes's default.
	DefaultMaxActionBytes = 256 << 20
)

// Config tunes a Store. Zero fields take the defaults.
type Config struct {
	// TTL is how long a found identity or action is served from memory
	// (default DefaultTTL). It bounds how late writes of other processes
	// are seen.
	TTL time.Duration
	// NegativeTTL is how long a NotFound answer is served from memory;
	// 0 (the default) does not cache misses.
	NegativeTTL time.Duration
	// StaleIfError is how long past its expiry an identity or action is
	// still served when the inner store is unreachable (see the package
	// comment); 0 (the default) never serves an expired entry.
	StaleIfError time.Duration
	// StaleWait, with StaleIfError, bounds the wait for the inner store
	// when an entry expired less than StaleIfError ago could stand in: a
	// read not answered by then counts as unreachable and the entry is
	// served. 0 (the default) waits as long as the caller's context.
	StaleWait time.Duration
	// MaxEntries bounds each of the two caches (identities, actions);
	// default DefaultMaxEntries.
	MaxEntries int
	// MaxActionBytes bounds the action cache by the size of what it holds
	// (code, parameters, annotations): an action's code can be tens of MB
	// (a native binary, a zip), and a cache bounded by count only held
	// 2.4 MB of heap per native benchmark action. An action larger than a
	// quarter of it is not cached (it is read from the store every time).
	// Default DefaultMaxActionBytes.
	MaxActionBytes int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Stats counts the cache's answers since New.
type Stats struct {
	IdentityHits, IdentityMisses uint64
	ActionHits, ActionMisses     uint64
	// IdentityStale and ActionStale count the expired entries served
	// because the inner store was unreachable (Config.StaleIfError).
	IdentityStale, ActionStale uint64
	// EntityHits and EntityMisses count GetEntity's answers (packages,
	// triggers, API documents).
	EntityHits, EntityMisses uint64
}

// Store is a caching store.Store.
type Store struct {
	inner store.Store
	cfg   Config
	ids   *lru[string, whisk.Identity]
	acts  *lru[actionKey, whisk.Action]
	ents  *lru[entityKey, whisk.Entity]

	idHits, idMisses, actHits, actMisses atomic.Uint64
	entHits, entMisses                   atomic.Uint64
	idStale, actStale                    atomic.Uint64
}

var _ store.Store = (*Store)(nil)

type actionKey struct{ namespace, name string }

// New wraps inner. Closing the Store closes inner.
func New(inner store.Store, cfg Config) *Store {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.NegativeTTL < 0 {
		cfg.NegativeTTL = 0
	}
	if cfg.StaleIfError < 0 {
		cfg.StaleIfError = 0
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxActionBytes <= 0 {
		cfg.MaxActionBytes = DefaultMaxActionBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{
		inner: inner,
		cfg:   cfg,
		ids:   newLRU[string, whisk.Identity](cfg.MaxEntries, cfg.StaleIfError),
		acts:  newLRU[actionKey, whisk.Action](cfg.MaxEntries, cfg.StaleIfError).withCost(actionBytes, cfg.MaxActionBytes),
		ents:  newLRU[entityKey, whisk.Entity](cfg.MaxEntries, cfg.StaleIfError).withCost(entityBytes, cfg.MaxActionBytes),
	}
}

// actionBytes is about what a cached action holds in memory: its code and
// its JSON documents, plus a fixed allowance for the rest.
func actionBytes(a whisk.Action) int {
	n := 512 + len(a.Exec.Code) + len(a.Exec.Image)
	for _, ps := range []whisk.Params{a.Parameters, a.Annotations} {
		for _, p := range ps {
			n += 32 + len(p.Key) + len(p.Value)
		}
	}
	for _, c := range a.Exec.Components {
		n += len(c)
	}
	return n
}

// Inner returns the wrapped store.
func (s *Store) Inner() store.Store { return s.inner }

// Stats returns the hit and miss counts so far.
func (s *Store) Stats() Stats {
	return Stats{
		IdentityHits: s.idHits.Load(), IdentityMisses: s.idMisses.Load(),
		ActionHits: s.actHits.Load(), ActionMisses: s.actMisses.Load(),
		IdentityStale: s.idStale.Load(), ActionStale: s.actStale.Load(),
		EntityHits: s.entHits.Load(), EntityMisses: s.entMisses.Load(),
	}
}

// expiry returns when an answer read now stops being served, and whether
// it is to be cached at all.
func (s *Store) expiry(err error) (time.Time, bool) {
	switch {
	case err == nil:
		return s.cfg.Now().Add(s.cfg.TTL), true
	case whisk.IsKind(err, whisk.NotFound) && s.cfg.NegativeTTL > 0:
		return s.cfg.Now().Add(s.cfg.NegativeTTL), true
	}
	return time.Time{}, false
}

// readCtx bounds an inner read by Config.StaleWait when an expired entry
// could stand in for its answer.
func (s *Store) readCtx(ctx context.Context, canStale bool) (context.Context, context.CancelFunc) {
	if !canStale || s.cfg.StaleWait <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.StaleWait)
}

// unreachable tells whether err means the inner store could not be
// reached, so that an expired entry may stand in (Config.StaleIfError).
func unreachable(err error) bool {
	return whisk.IsKind(err, whisk.Unavailable) || whisk.IsKind(err, whisk.Timeout) ||
		errors.Is(err, context.DeadlineExceeded)
}

// IdentityByUUID answers from the cache, or from the inner store.
func (s *Store) IdentityByUUID(ctx context.Context, uuid string) (whisk.Identity, error) {
	if id, err, ok := s.ids.get(uuid, s.cfg.Now()); ok {
		s.idHits.Add(1)
		return id, err
	}
	s.idMisses.Add(1)
	return load(ctx, s.ids, uuid, func(gen uint64) (whisk.Identity, error) {
		ctx, cancel := s.readCtx(ctx, s.ids.hasStale(uuid, s.cfg.Now()))
		defer cancel()
		id, err := s.inner.IdentityByUUID(ctx, uuid)
		if exp, ok := s.expiry(err); ok {
			s.ids.put(uuid, id, err, exp, gen)
		} else if whisk.IsKind(err, whisk.NotFound) {
			s.ids.drop(uuid)
		} else if unreachable(err) {
			if old, ok := s.ids.stale(uuid, s.cfg.Now()); ok {
				s.idStale.Add(1)
				return old, nil
			}
		}
		return id, err
	}, func(id whisk.Identity) whisk.Identity { return id })
}

// PutIdentity writes through and drops the cached identity.
func (s *Store) PutIdentity(ctx context.Context, id whisk.Identity) error {
	err := s.inner.PutIdentity(ctx, id)
	s.ids.invalidate(id.UUID)
	return err
}

// ListIdentities is not cached.
func (s *Store) ListIdentities(ctx context.Context, namespace string) ([]whisk.Identity, error) {
	return s.inner.ListIdentities(ctx, namespace)
}

// DeleteIdentity writes through and drops the cached identity.
func (s *Store) DeleteIdentity(ctx context.Context, uuid string) error {
	err := s.inner.DeleteIdentity(ctx, uuid)
	s.ids.invalidate(uuid)
	return err
}

// GetNamespaceLimits is not cached (identities carry their namespace's
// limits, and those are cached with them).
func (s *Store) GetNamespaceLimits(ctx context.Context, namespace string) (whisk.NamespaceLimits, error) {
	return s.inner.GetNamespaceLimits(ctx, namespace)
}

// PutNamespaceLimits writes through and drops every cached identity (which
// carry their namespace's limits; limits change rarely).
func (s *Store) PutNamespaceLimits(ctx context.Context, namespace string, l whisk.NamespaceLimits) error {
	err := s.inner.PutNamespaceLimits(ctx, namespace, l)
	s.ids.invalidateAll()
	return err
}

// CreateIdentity writes through and drops the cached entry of the UUID.
func (s *Store) CreateIdentity(ctx context.Context, id whisk.Identity, check func([]whisk.Identity, *whisk.Identity) error) error {
	err := s.inner.CreateIdentity(ctx, id, check)
	s.ids.invalidate(id.UUID)
	return err
}

// SetSubjectBlocked writes through and drops every cached identity (the
// subject's keys are not indexed by subject here).
func (s *Store) SetSubjectBlocked(ctx context.Context, subject string, blocked bool) (int, error) {
	n, err := s.inner.SetSubjectBlocked(ctx, subject, blocked)
	s.ids.invalidateAll()
	return n, err
}

// DeleteNamespaceLimits writes through and drops every cached identity.
func (s *Store) DeleteNamespaceLimits(ctx context.Context, namespace string) error {
	err := s.inner.DeleteNamespaceLimits(ctx, namespace)
	s.ids.invalidateAll()
	return err
}

// GetAction answers from the cache, or from the inner store.
func (s *Store) GetAction(ctx context.Context, namespace, name string) (whisk.Action, error) {
	k := actionKey{namespace, name}
	if a, err, ok := s.acts.get(k, s.cfg.Now()); ok {
		s.actHits.Add(1)
		return cloneAction(a), err
	}
	s.actMisses.Add(1)
	return load(ctx, s.acts, k, func(gen uint64) (whisk.Action, error) {
		ctx, cancel := s.readCtx(ctx, s.acts.hasStale(k, s.cfg.Now()))
		defer cancel()
		a, err := s.inner.GetAction(ctx, namespace, name)
		if exp, ok := s.expiry(err); ok {
			s.acts.put(k, cloneAction(a), err, exp, gen)
		} else if whisk.IsKind(err, whisk.NotFound) {
			s.acts.drop(k)
		} else if unreachable(err) {
			if old, ok := s.acts.stale(k, s.cfg.Now()); ok {
				s.actStale.Add(1)
				return cloneAction(old), nil
			}
		}
		return a, err
	}, cloneAction)
}

// load answers a miss of k by read, which reads the inner store and fills
// the cache under generation gen. Callers missing the same key while a read
// is in flight wait for its answer instead of reading too (each gets its
// own copy, made by clone): when a much-used entry expires, every request
// in flight misses at once, and a native action's document is megabytes
// of JSON (64 callers decoding it together every TTL took a third of the
// process's CPU under load). A caller does not join a read begun before an
// invalidation (a write through this wrapper), so a write is still seen at
// once; and when the reading caller's own context ends before its answer,
// the others read again rather than take its cancellation (see lead).
func load[K comparable, V any](ctx context.Context, c *lru[K, V], k K, read func(gen uint64) (V, error), clone func(V) V) (V, error) {
	for {
		f, leader := c.join(k)
		if leader {
			return lead(ctx, c, k, f, read, clone)
		}
		select {
		case <-f.done:
			if f.abandoned && ctx.Err() == nil {
				continue
			}
			return clone(f.val), f.err
		case <-ctx.Done():
			// As a direct read that ran out of time fails (a Timeout when
			// the deadline passed), not a bare context error.
			kind := whisk.Internal
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				kind = whisk.Timeout
			}
			var zero V
			return zero, whisk.E("cached.load", kind, "", ctx.Err())
		}
	}
}

// PutAction runs the compare-and-swap in the inner store and drops the
// cached action.
func (s *Store) PutAction(ctx context.Context, a whisk.Action, expectRev int64) (whisk.Action, error) {
	out, err := s.inner.PutAction(ctx, a, expectRev)
	s.acts.invalidate(actionKey{a.Namespace, a.Name})
	return out, err
}

// DeleteAction deletes in the inner store and drops the cached action.
func (s *Store) DeleteAction(ctx context.Context, namespace, name string) (whisk.Action, error) {
	out, err := s.inner.DeleteAction(ctx, namespace, name)
	s.acts.invalidate(actionKey{namespace, name})
	return out, err
}

// ListActions is not cached.
func (s *Store) ListActions(ctx context.Context, namespace string, skip, limit int) ([]whisk.Action, error) {
	return s.inner.ListActions(ctx, namespace, skip, limit)
}

// ListPackageActions is not cached.
func (s *Store) ListPackageActions(ctx context.Context, namespace, pkg string, skip, limit int) ([]whisk.Action, error) {
	return s.inner.ListPackageActions(ctx, namespace, pkg, skip, limit)
}

// CountPackageActions is not cached.
func (s *Store) CountPackageActions(ctx context.Context, namespace, pkg string) (int, error) {
	return s.inner.CountPackageActions(ctx, namespace, pkg)
}

// CountActions is not cached.
func (s *Store) CountActions(ctx context.Context, namespace string) (int, error) {
	return s.inner.CountActions(ctx, namespace)
}

// PutActivation is not cached.
func (s *Store) PutActivation(ctx context.Context, a whisk.Activation) error {
	return s.inner.PutActivation(ctx, a)
}

// GetActivation is not cached.
func (s *Store) GetActivation(ctx context.Context, namespace string, id whisk.ActivationID) (whisk.Activation, error) {
	return s.inner.GetActivation(ctx, namespace, id)
}

// ListActivations is not cached.
func (s *Store) ListActivations(ctx context.Context, namespace string, f store.ActivationFilter) ([]whisk.Activation, error) {
	return s.inner.ListActivations(ctx, namespace, f)
}

// EachActivation is not cached.
func (s *Store) EachActivation(ctx context.Context, namespace string, f store.ActivationFilter, fn func(whisk.Activation) error) error {
	return s.inner.EachActivation(ctx, namespace, f, fn)
}

// CountActivations is not cached.
func (s *Store) CountActivations(ctx context.Context, namespace string, f store.ActivationFilter) (int, error) {
	return s.inner.CountActivations(ctx, namespace, f)
}

// Close closes the inner store.
func (s *Store) Close() error { return s.inner.Close() }

// cloneAction copies the slices of a, so that the copy shares no memory
// with a.
func cloneAction(a whisk.Action) whisk.Action {
	a.Exec.Components = slices.Clone(a.Exec.Components)
	a.Parameters = cloneParams(a.Parameters)
	a.Annotations = cloneParams(a.Annotations)
	return a
}

func cloneParams(p whisk.Params) whisk.Params {
	if p == nil {
		return nil
	}
	out := make(whisk.Params, len(p))
	for i, kv := range p {
		out[i] = whisk.KeyValue{Key: kv.Key, Value: bytes.Clone(kv.Value)}
	}
	return out
}

// lru is a size-bounded map with expiring entries, least recently used
// first out. An entry holds a value or a cached error (a miss). An expired
// value is kept for keep more (Config.StaleIfError), for stale.
type lru[K comparable, V any] struct {
	mu   sync.Mutex
	max  int
	keep time.Duration
	// With a cost function, the entries' costs add up to at most maxCost
	// (total), and a value costing more than a quarter of it is not kept.
	cost    func(V) int
	maxCost int
	total   int
	// gen is bumped by every invalidation; put drops an answer read
	// under an older generation, which may predate the write.
	gen uint64
	ll  *list.List // of *entry[K, V], most recently used at the front
	m   map[K]*list.Element
	// flights are the inner reads in flight, one per key (see load).
	flights map[K]*flight[V]
}

// flight is one read of the inner store that concurrent misses of its key
// share: val and err are set before done is closed.
type flight[V any] struct {
	gen       uint64
	done      chan struct{}
	val       V
	err       error
	abandoned bool // the reading caller's context ended first (see lead)
}

type entry[K comparable, V any] struct {
	key     K
	val     V
	err     error
	expires time.Time
	cost    int
}

func newLRU[K comparable, V any](max int, keep time.Duration) *lru[K, V] {
	return &lru[K, V]{max: max, keep: keep, ll: list.New(), m: make(map[K]*list.Element), flights: make(map[K]*flight[V])}
}

// withCost bounds c by the sum of its values' cost as well.
func (c *lru[K, V]) withCost(cost func(V) int, max int) *lru[K, V] {
	c.cost, c.maxCost = cost, max
	return c
}

// remove takes el out (under mu).
func (c *lru[K, V]) remove(el *list.Element) {
	e := el.Value.(*entry[K, V])
	c.ll.Remove(el)
	delete(c.m, e.key)
	c.total -= e.cost
}

// get returns the live entry of k; ok is false when there is none.
func (c *lru[K, V]) get(k K, now time.Time) (v V, err error, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, found := c.m[k]
	if !found {
		return v, nil, false
	}
	e := el.Value.(*entry[K, V])
	if !now.Before(e.expires) {
		if e.err != nil || !now.Before(e.expires.Add(c.keep)) {
			c.remove(el)
		}
		return v, nil, false
	}
	c.ll.MoveToFront(el)
	return e.val, e.err, true
}

// hasStale tells whether stale would find k's value.
func (c *lru[K, V]) hasStale(k K, now time.Time) bool {
	_, ok := c.stale(k, now)
	return ok
}

// stale returns k's value when it expired less than keep ago (a live
// entry is returned too: it was put since the caller's get).
func (c *lru[K, V]) stale(k K, now time.Time) (v V, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, found := c.m[k]
	if !found {
		return v, false
	}
	e := el.Value.(*entry[K, V])
	if e.err != nil || !now.Before(e.expires.Add(c.keep)) {
		return v, false
	}
	return e.val, true
}

// lead reads k for flight f, on behalf of the caller whose context is
// ctx, and shares the answer. The flight is abandoned when that context
// ended before the answer: its error is the caller's giving up, not the
// store's, so the waiters read again. (A store's own timeout is an answer
// like any other: waiters take it rather than each wait as long again.)
// The deferred finish also ends the flight if read panics, so that no
// waiter hangs on it.
func lead[K comparable, V any](ctx context.Context, c *lru[K, V], k K, f *flight[V], read func(gen uint64) (V, error), clone func(V) V) (v V, err error) {
	err = errors.New("cached: the read of this entry panicked")
	defer func() {
		f.abandoned = err != nil && ctx.Err() != nil
		c.finish(k, f, clone(v), err)
	}()
	return read(f.gen)
}

// join returns the read of k in flight, when one began under the current
// generation; otherwise it registers a new one, which the caller (the
// leader) reads and ends with finish. The flight's generation is the one
// to pass to put.
func (c *lru[K, V]) join(k K) (f *flight[V], leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.flights[k]; ok && f.gen == c.gen {
		return f, false
	}
	f = &flight[V]{gen: c.gen, done: make(chan struct{})}
	c.flights[k] = f
	return f, true
}

// finish ends the leader's flight with its answer.
func (c *lru[K, V]) finish(k K, f *flight[V], v V, err error) {
	f.val, f.err = v, err
	c.mu.Lock()
	if c.flights[k] == f {
		delete(c.flights, k)
	}
	c.mu.Unlock()
	close(f.done)
}

// put stores an answer read under generation gen, unless an invalidation
// happened since.
func (c *lru[K, V]) put(k K, v V, err error, expires time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	cost := 0
	if c.cost != nil && err == nil {
		cost = c.cost(v)
	}
	if el, found := c.m[k]; found {
		c.remove(el)
	}
	if c.cost != nil && cost > c.maxCost/4 {
		return // too big to keep: read from the store every time
	}
	c.m[k] = c.ll.PushFront(&entry[K, V]{key: k, val: v, err: err, expires: expires, cost: cost})
	c.total += cost
	for c.ll.Len() > c.max || (c.cost != nil && c.total > c.maxCost) {
		c.remove(c.ll.Back())
	}
}

// invalidate drops k and makes reads in flight not cache their answers.
func (c *lru[K, V]) invalidate(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if el, found := c.m[k]; found {
		c.remove(el)
	}
}

// drop removes k's entry (a read found it gone), without touching reads
// in flight.
func (c *lru[K, V]) drop(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, found := c.m[k]; found {
		c.remove(el)
	}
}

// invalidateAll drops every entry and makes reads in flight not cache
// their answers.
func (c *lru[K, V]) invalidateAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.ll.Init()
	clear(c.m)
	c.total = 0
}

// size returns the number of entries, live or expired.
func (c *lru[K, V]) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

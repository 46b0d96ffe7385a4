// Package store defines where Eddy keeps its entities and activation
// records: identities (namespaces and keys), namespace limits, actions, and
// activations with their logs. Implementations: store/sqlite (the embedded
// default) and store/postgres (clusters); store/storetest is the contract suite.
//
// Errors carry whisk kinds: NotFound for a missing entity, Conflict for a
// create over an existing one or a stale revision.
package store

import (
	"context"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// ActivationFilter selects activation records of one namespace.
// Since and Upto are epoch ms bounds on Start (inclusive, 0 = unbounded);
// Name filters by whisk.Activation.FilterName: "a" for an action of the
// default package, "pkg/a" for a packaged one ("binding/a" when invoked
// through a binding). Results are newest first.
type ActivationFilter struct {
	Name  string
	Since int64
	Upto  int64
	Skip  int
	Limit int // 0 = no limit
	// Summary reads records without their logs and result (what a list
	// without docs shows), so that a page of records with megabytes of
	// logs each is not read for their summaries.
	Summary bool
}

// EntityFilter pages a list of entities. Limit 0 means no limit.
// PublicOnly keeps only entities with Publish set.
type EntityFilter struct {
	Skip       int
	Limit      int
	PublicOnly bool
}

// EntityOp is one write of Store.ApplyEntities: a put of Entity (with
// PutEntity's ExpectRev rule) or, with Delete, the removal of the entity
// named by Entity's Kind, Namespace and Name (with DeleteEntity's rule).
type EntityOp struct {
	Delete    bool
	Entity    whisk.Entity
	ExpectRev int64
}

// Store is the whole store; role packages declare the parts they use.
type Store interface {
	// IdentityByUUID returns the identity whose key has this UUID (NotFound
	// otherwise), with its namespace's limits (zero when none are set).
	// Identities read back carry KeyHash, never Key: keys are stored as
	// salted hashes (whisk.HashKey), checked with whisk.KeyMatches.
	IdentityByUUID(ctx context.Context, uuid string) (whisk.Identity, error)
	// PutIdentity creates or replaces an identity (a key). id.Limits is
	// not stored: limits belong to the namespace (PutNamespaceLimits).
	// The key is stored as KeyHash(id).
	PutIdentity(ctx context.Context, id whisk.Identity) error
	// ListIdentities returns the identities of a namespace ("" = of every
	// namespace) with their namespace's limits, ordered by subject,
	// namespace, then UUID.
	ListIdentities(ctx context.Context, namespace string) ([]whisk.Identity, error)
	// CreateIdentity adds a key for id.Subject in id.Namespace, atomically
	// with check: check sees the subject's keys and the identity holding
	// id.UUID (nil if none) as they are when the key is written, and an
	// error from it aborts the write and is returned. Creates of one
	// subject are serialized (also across processes), so two cannot both
	// pass a check that forbids what the other writes.
	CreateIdentity(ctx context.Context, id whisk.Identity, check func(subjectKeys []whisk.Identity, uuidHolder *whisk.Identity) error) error
	// SetSubjectBlocked blocks (or unblocks) every key of a subject and
	// returns how many keys the subject has (0: no such subject). A
	// blocked identity is read back with Blocked set and authenticates
	// nothing.
	SetSubjectBlocked(ctx context.Context, subject string, blocked bool) (int, error)
	// DeleteIdentity removes the key with this UUID (NotFound otherwise).
	DeleteIdentity(ctx context.Context, uuid string) error

	// GetNamespaceLimits returns the limits set for a namespace (NotFound
	// when none are set: the system defaults apply).
	GetNamespaceLimits(ctx context.Context, namespace string) (whisk.NamespaceLimits, error)
	// PutNamespaceLimits sets (replaces) a namespace's limits. A zero
	// field means the system default.
	PutNamespaceLimits(ctx context.Context, namespace string, l whisk.NamespaceLimits) error
	// DeleteNamespaceLimits removes a namespace's limits (NotFound when
	// none are set), so that the system defaults apply again.
	DeleteNamespaceLimits(ctx context.Context, namespace string) error

	// GetAction returns an action with its code and Rev. A name held by a
	// package, trigger or rule of the namespace is Conflict with
	// whisk.MsgWrongCollection (as DeleteAction, and PutAction's create).
	GetAction(ctx context.Context, namespace, name string) (whisk.Action, error)
	// PutAction writes a. With expectRev 0 it creates (Conflict with
	// whisk.MsgExists when the action exists); otherwise it replaces the
	// action only if its current Rev is expectRev (Conflict with
	// whisk.MsgConcurrentUpdate otherwise). It returns the action as stored,
	// with Rev bumped and Updated set.
	PutAction(ctx context.Context, a whisk.Action, expectRev int64) (whisk.Action, error)
	// DeleteAction removes an action and returns it as it was.
	DeleteAction(ctx context.Context, namespace, name string) (whisk.Action, error)
	// ListActions returns the actions of a namespace by name, without code.
	ListActions(ctx context.Context, namespace string, skip, limit int) ([]whisk.Action, error)
	// CountActions counts the actions of a namespace.
	CountActions(ctx context.Context, namespace string) (int, error)
	// ListPackageActions returns the actions of package pkg of a namespace
	// by name, without code. A packaged action is stored under its
	// package's namespace with the name "pkg/<name>" (whisk.PackagedName),
	// so ListActions lists it too, as OpenWhisk lists a namespace's actions.
	ListPackageActions(ctx context.Context, namespace, pkg string, skip, limit int) ([]whisk.Action, error)
	// CountPackageActions counts the actions of package pkg of a namespace.
	CountPackageActions(ctx context.Context, namespace, pkg string) (int, error)

	// GetEntity returns one entity (NotFound when absent). For a kind
	// that SharesNames, a name held by another such kind or by a
	// default-package action is Conflict with whisk.MsgWrongCollection.
	GetEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string) (whisk.Entity, error)
	// PutEntity writes e. With expectRev 0 it creates: Conflict with
	// whisk.MsgExists when the entity exists, with
	// whisk.MsgWrongCollection when the name is held by another kind
	// sharing names or by an action. Otherwise it replaces the entity
	// only if its current Rev is expectRev (Conflict with
	// whisk.MsgConcurrentUpdate otherwise, NotFound when it is gone). It
	// returns the entity as stored, with Rev bumped and Updated set.
	PutEntity(ctx context.Context, e whisk.Entity, expectRev int64) (whisk.Entity, error)
	// DeleteEntity removes an entity and returns it as it was. expectRev 0
	// removes whatever revision is stored; otherwise only that one
	// (Conflict with whisk.MsgConcurrentUpdate). NotFound (or the wrong
	// collection's Conflict, as GetEntity) when absent.
	DeleteEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string, expectRev int64) (whisk.Entity, error)
	// ListEntities returns the entities of a kind in a namespace ("" =
	// every namespace), newest Updated first, then by namespace and name.
	ListEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f EntityFilter) ([]whisk.Entity, error)
	// CountEntities counts what ListEntities would return without paging.
	CountEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f EntityFilter) (int, error)
	// ApplyEntities runs puts and deletes in one transaction: all happen
	// or none does (the first failing op's error is returned). It returns
	// the entities in op order: as written for puts, as they were for
	// deletes.
	ApplyEntities(ctx context.Context, ops []EntityOp) ([]whisk.Entity, error)

	// PutActivation stores a record. The first record of an activation id
	// wins: storing the same id again keeps the stored record and returns
	// nil. So an activation has exactly one record even when two parties
	// write one (a scheduler's "invoker lost" error record and a late
	// record of a partitioned invoker, or the two runs of an activation
	// delivered twice after a fail-over): the first one, which is the one
	// its waiting caller was told.
	PutActivation(ctx context.Context, a whisk.Activation) error
	// GetActivation returns one record of a namespace.
	GetActivation(ctx context.Context, namespace string, id whisk.ActivationID) (whisk.Activation, error)
	// ListActivations returns full records matching f, newest first.
	ListActivations(ctx context.Context, namespace string, f ActivationFilter) ([]whisk.Activation, error)
	// EachActivation calls fn with each record matching f, newest first,
	// one at a time: the page is never held whole, so listing records
	// with 10 MB of logs each costs the memory of one of them. An error
	// from fn stops the reading and is returned as it is.
	EachActivation(ctx context.Context, namespace string, f ActivationFilter, fn func(whisk.Activation) error) error
	// CountActivations counts the records matching f (Skip and Limit ignored).
	CountActivations(ctx context.Context, namespace string, f ActivationFilter) (int, error)

	Close() error
}

// KeyHash is what a store's PutIdentity keeps of id's key: the hash of
// id.Key, or id.KeyHash as it is when id.Key is empty (an identity read
// back and written again). An identity with neither is Invalid.
func KeyHash(id whisk.Identity) (string, error) {
	switch {
	case id.Key != "":
		return whisk.HashKey(id.Key), nil
	case whisk.IsKeyHash(id.KeyHash):
		return id.KeyHash, nil
	}
	return "", whisk.E("store.KeyHash", whisk.Invalid, "identity has no key", nil)
}

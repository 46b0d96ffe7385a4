package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// sharedKinds is the SQL list of the entity kinds that share names with
// each other and with default-package actions (whisk.EntityKind.SharesNames).
const sharedKinds = `('package', 'trigger', 'rule')`

// queryer is what the entity functions need of the pool or a transaction.
type queryer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// GetEntity returns one entity; see store.Store.
func (s *Store) GetEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string) (whisk.Entity, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.GetEntity"
	e, err := getEntity(ctx, s.pool, kind, namespace, name)
	if errors.Is(err, pgx.ErrNoRows) {
		return whisk.Entity{}, missing(ctx, s.pool, op, err, kind, namespace, name)
	}
	if err != nil {
		return whisk.Entity{}, dbErr(op, err)
	}
	return e, nil
}

func getEntity(ctx context.Context, q queryer, kind whisk.EntityKind, namespace, name string) (whisk.Entity, error) {
	e := whisk.Entity{Kind: kind, Namespace: namespace, Name: name}
	err := q.QueryRow(ctx,
		`SELECT publish, rev, updated, doc FROM entities WHERE namespace = $1 AND kind = $2 AND name = $3`,
		namespace, string(kind), name,
	).Scan(&e.Publish, &e.Rev, &e.Updated, &e.Doc)
	return e, err
}

// missing is the error for an entity that is not there: the wrong
// collection's Conflict when another kind sharing names (or an action, for
// kind "" meaning an action) holds the name, else NotFound.
//
// cause is the driver's error for the missing row, wrapped by NotFound.
func missing(ctx context.Context, q queryer, op string, cause error, kind whisk.EntityKind, namespace, name string) error {
	if kind != "" && !kind.SharesNames() {
		return whisk.E(op, whisk.NotFound, whisk.MsgNotFound, cause)
	}
	var held int
	err := q.QueryRow(ctx,
		`SELECT count(*) FROM entities WHERE namespace = $1 AND name = $2 AND kind IN `+sharedKinds+` AND kind <> $3`,
		namespace, name, string(kind)).Scan(&held)
	if err == nil && held == 0 && kind != "" {
		err = q.QueryRow(ctx, `SELECT count(*) FROM actions WHERE namespace = $1 AND name = $2`, namespace, name).Scan(&held)
	}
	if err != nil {
		return dbErr(op, err)
	}
	if held > 0 {
		return whisk.E(op, whisk.Conflict, whisk.MsgWrongCollection, nil)
	}
	return whisk.E(op, whisk.NotFound, whisk.MsgNotFound, cause)
}

// PutEntity creates or replaces an entity; see store.Store.
func (s *Store) PutEntity(ctx context.Context, e whisk.Entity, expectRev int64) (whisk.Entity, error) {
	out, err := s.ApplyEntities(ctx, []store.EntityOp{{Entity: e, ExpectRev: expectRev}})
	if err != nil {
		return whisk.Entity{}, retag(err, "postgres.PutEntity")
	}
	return out[0], nil
}

// DeleteEntity removes an entity; see store.Store.
func (s *Store) DeleteEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string, expectRev int64) (whisk.Entity, error) {
	out, err := s.ApplyEntities(ctx, []store.EntityOp{{
		Delete: true, Entity: whisk.Entity{Kind: kind, Namespace: namespace, Name: name}, ExpectRev: expectRev,
	}})
	if err != nil {
		return whisk.Entity{}, retag(err, "postgres.DeleteEntity")
	}
	return out[0], nil
}

// retag names op as the operation of a whisk error from ApplyEntities.
func retag(err error, op string) error {
	var we *whisk.Error
	if errors.As(err, &we) {
		c := *we
		c.Op = op
		return &c
	}
	return err
}

// ApplyEntities runs the ops in one transaction; see store.Store.
func (s *Store) ApplyEntities(ctx context.Context, ops []store.EntityOp) ([]whisk.Entity, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.ApplyEntities"
	now := s.now().UnixMilli()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	out := make([]whisk.Entity, 0, len(ops))
	for _, o := range ops {
		if err := checkEntity(op, o); err != nil {
			return nil, err
		}
		var e whisk.Entity
		if o.Delete {
			e, err = deleteEntity(ctx, tx, op, o)
		} else {
			e, err = putEntity(ctx, tx, op, o, now)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, dbErr(op, err)
	}
	return out, nil
}

// checkEntity refuses an op the schema cannot hold.
func checkEntity(op string, o store.EntityOp) error {
	switch {
	case !o.Entity.Kind.Valid():
		return whisk.E(op, whisk.Invalid, fmt.Sprintf("invalid entity kind %q", o.Entity.Kind), nil)
	case o.ExpectRev < 0:
		return whisk.E(op, whisk.Invalid, fmt.Sprintf("invalid revision %d", o.ExpectRev), nil)
	}
	return nil
}

func putEntity(ctx context.Context, tx pgx.Tx, op string, o store.EntityOp, now int64) (whisk.Entity, error) {
	e := o.Entity
	e.Rev = o.ExpectRev + 1
	e.Updated = now
	doc, err := encode(e.Doc)
	if err != nil {
		return whisk.Entity{}, whisk.E(op, whisk.Invalid, "entity document is not JSON", err)
	}
	var tag pgconn.CommandTag
	if o.ExpectRev == 0 {
		// The entities_shared_names index refuses a second kind sharing
		// names; NOT EXISTS refuses a name an action holds.
		tag, err = tx.Exec(ctx,
			`INSERT INTO entities (namespace, kind, name, publish, rev, updated, doc)
			 SELECT $1, $2, $3, $4, $5, $6, $7
			 WHERE NOT $8 OR NOT EXISTS (SELECT 1 FROM actions WHERE namespace = $1 AND name = $3)
			 ON CONFLICT DO NOTHING`,
			e.Namespace, string(e.Kind), e.Name, e.Publish, e.Rev, e.Updated, doc, e.Kind.SharesNames())
	} else {
		tag, err = tx.Exec(ctx,
			`UPDATE entities SET publish = $1, rev = $2, updated = $3, doc = $4
			 WHERE namespace = $5 AND kind = $6 AND name = $7 AND rev = $8`,
			e.Publish, e.Rev, e.Updated, doc, e.Namespace, string(e.Kind), e.Name, o.ExpectRev)
	}
	if err != nil {
		return whisk.Entity{}, dbErr(op, err)
	}
	if tag.RowsAffected() == 1 {
		e.Doc = doc
		return e, nil
	}
	_, err = getEntity(ctx, tx, e.Kind, e.Namespace, e.Name)
	switch {
	case err == nil && o.ExpectRev == 0:
		return whisk.Entity{}, whisk.E(op, whisk.Conflict, whisk.MsgExists, nil)
	case err == nil:
		return whisk.Entity{}, whisk.E(op, whisk.Conflict, whisk.MsgConcurrentUpdate, nil)
	case !errors.Is(err, pgx.ErrNoRows):
		return whisk.Entity{}, dbErr(op, err)
	case o.ExpectRev == 0:
		return whisk.Entity{}, whisk.E(op, whisk.Conflict, whisk.MsgWrongCollection, nil)
	}
	return whisk.Entity{}, missing(ctx, tx, op, pgx.ErrNoRows, e.Kind, e.Namespace, e.Name)
}

func deleteEntity(ctx context.Context, tx pgx.Tx, op string, o store.EntityOp) (whisk.Entity, error) {
	e := whisk.Entity{Kind: o.Entity.Kind, Namespace: o.Entity.Namespace, Name: o.Entity.Name}
	err := tx.QueryRow(ctx,
		`DELETE FROM entities WHERE namespace = $1 AND kind = $2 AND name = $3 AND ($4 = 0 OR rev = $4)
		 RETURNING publish, rev, updated, doc`,
		e.Namespace, string(e.Kind), e.Name, o.ExpectRev,
	).Scan(&e.Publish, &e.Rev, &e.Updated, &e.Doc)
	if err == nil {
		return e, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return whisk.Entity{}, dbErr(op, err)
	}
	if o.ExpectRev != 0 {
		if _, err := getEntity(ctx, tx, e.Kind, e.Namespace, e.Name); err == nil {
			return whisk.Entity{}, whisk.E(op, whisk.Conflict, whisk.MsgConcurrentUpdate, nil)
		}
	}
	return whisk.Entity{}, missing(ctx, tx, op, pgx.ErrNoRows, e.Kind, e.Namespace, e.Name)
}

// ListEntities returns entities of a kind, newest first; see store.Store.
func (s *Store) ListEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f store.EntityFilter) ([]whisk.Entity, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.ListEntities"
	rows, err := s.pool.Query(ctx,
		`SELECT namespace, name, publish, rev, updated, doc FROM entities
		 WHERE kind = $1 AND ($2 = '' OR namespace = $2) AND (NOT $3 OR publish)
		 ORDER BY updated DESC, namespace, name LIMIT $4 OFFSET $5`,
		string(kind), namespace, f.PublicOnly, sqlLimit(f.Limit), max(f.Skip, 0))
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []whisk.Entity{}
	for rows.Next() {
		e := whisk.Entity{Kind: kind}
		if err := rows.Scan(&e.Namespace, &e.Name, &e.Publish, &e.Rev, &e.Updated, &e.Doc); err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(op, err)
	}
	return out, nil
}

// CountEntities counts what ListEntities would return without paging.
func (s *Store) CountEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f store.EntityFilter) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var n int
	err := s.pool.QueryRow(ctx,
		`SELECT count(*) FROM entities WHERE kind = $1 AND ($2 = '' OR namespace = $2) AND (NOT $3 OR publish)`,
		string(kind), namespace, f.PublicOnly).Scan(&n)
	return n, dbErr("postgres.CountEntities", err)
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// sharedKinds is the SQL list of the entity kinds that share names with
// each other and with default-package actions (whisk.EntityKind.SharesNames).
const sharedKinds = `('package', 'trigger', 'rule')`

// queryer is what the entity functions need of a connection or a transaction.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// GetEntity returns one entity; see store.Store.
func (s *Store) GetEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string) (whisk.Entity, error) {
	const op = "sqlite.GetEntity"
	e, err := getEntity(ctx, s.r, kind, namespace, name)
	if errors.Is(err, sql.ErrNoRows) {
		return whisk.Entity{}, s.missing(ctx, s.r, op, kind, namespace, name)
	}
	if err != nil {
		return whisk.Entity{}, dbErr(op, err)
	}
	return e, nil
}

func getEntity(ctx context.Context, q queryer, kind whisk.EntityKind, namespace, name string) (whisk.Entity, error) {
	e := whisk.Entity{Kind: kind, Namespace: namespace, Name: name}
	var doc string
	err := q.QueryRowContext(ctx,
		`SELECT publish, rev, updated, doc FROM entities WHERE namespace = ? AND kind = ? AND name = ?`,
		namespace, string(kind), name,
	).Scan(&e.Publish, &e.Rev, &e.Updated, &doc)
	e.Doc = json.RawMessage(doc)
	return e, err
}

// missing is the error for an entity that is not there: the wrong
// collection's Conflict when another kind sharing names (or an action, for
// kind "" meaning an action) holds the name, else NotFound.
func (s *Store) missing(ctx context.Context, q queryer, op string, kind whisk.EntityKind, namespace, name string) error {
	if kind != "" && !kind.SharesNames() {
		return notFound(op)
	}
	var held int
	err := q.QueryRowContext(ctx,
		`SELECT count(*) FROM entities WHERE namespace = ? AND name = ? AND kind IN `+sharedKinds+` AND kind <> ?`,
		namespace, name, string(kind)).Scan(&held)
	if err == nil && held == 0 && kind != "" {
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM actions WHERE namespace = ? AND name = ?`, namespace, name).Scan(&held)
	}
	if err != nil {
		return dbErr(op, err)
	}
	if held > 0 {
		return whisk.E(op, whisk.Conflict, whisk.MsgWrongCollection, nil)
	}
	return notFound(op)
}

// PutEntity creates or replaces an entity; see store.Store.
func (s *Store) PutEntity(ctx context.Context, e whisk.Entity, expectRev int64) (whisk.Entity, error) {
	out, err := s.ApplyEntities(ctx, []store.EntityOp{{Entity: e, ExpectRev: expectRev}})
	if err != nil {
		return whisk.Entity{}, retag(err, "sqlite.PutEntity")
	}
	return out[0], nil
}

// DeleteEntity removes an entity; see store.Store.
func (s *Store) DeleteEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string, expectRev int64) (whisk.Entity, error) {
	out, err := s.ApplyEntities(ctx, []store.EntityOp{{
		Delete: true, Entity: whisk.Entity{Kind: kind, Namespace: namespace, Name: name}, ExpectRev: expectRev,
	}})
	if err != nil {
		return whisk.Entity{}, retag(err, "sqlite.DeleteEntity")
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
	const op = "sqlite.ApplyEntities"
	now := s.now().UnixMilli()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer tx.Rollback()
	out := make([]whisk.Entity, 0, len(ops))
	for _, o := range ops {
		if err := checkEntity(op, o); err != nil {
			return nil, err
		}
		var e whisk.Entity
		if o.Delete {
			e, err = s.deleteEntity(ctx, tx, op, o)
		} else {
			e, err = s.putEntity(ctx, tx, op, o, now)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := tx.Commit(); err != nil {
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
	case !o.Delete && !json.Valid(o.Entity.Doc):
		return whisk.E(op, whisk.Invalid, "entity document is not JSON", nil)
	}
	return nil
}

func (s *Store) putEntity(ctx context.Context, tx *sql.Tx, op string, o store.EntityOp, now int64) (whisk.Entity, error) {
	e := o.Entity
	e.Rev = o.ExpectRev + 1
	e.Updated = now
	var res sql.Result
	var err error
	if o.ExpectRev == 0 {
		// The entities_shared_names index refuses a second kind sharing
		// names; NOT EXISTS refuses a name an action holds.
		res, err = tx.ExecContext(ctx,
			`INSERT INTO entities (namespace, kind, name, publish, rev, updated, doc)
			 SELECT ?, ?, ?, ?, ?, ?, ?
			 WHERE ? = 0 OR NOT EXISTS (SELECT 1 FROM actions WHERE namespace = ? AND name = ?)
			 ON CONFLICT DO NOTHING`,
			e.Namespace, string(e.Kind), e.Name, e.Publish, e.Rev, e.Updated, string(e.Doc),
			e.Kind.SharesNames(), e.Namespace, e.Name)
	} else {
		res, err = tx.ExecContext(ctx,
			`UPDATE entities SET publish = ?, rev = ?, updated = ?, doc = ?
			 WHERE namespace = ? AND kind = ? AND name = ? AND rev = ?`,
			e.Publish, e.Rev, e.Updated, string(e.Doc), e.Namespace, string(e.Kind), e.Name, o.ExpectRev)
	}
	if err != nil {
		return whisk.Entity{}, dbErr(op, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return e, dbErr(op, err)
	}
	_, err = getEntity(ctx, tx, e.Kind, e.Namespace, e.Name)
	switch {
	case err == nil && o.ExpectRev == 0:
		return whisk.Entity{}, whisk.E(op, whisk.Conflict, whisk.MsgExists, nil)
	case err == nil:
		return whisk.Entity{}, whisk.E(op, whisk.Conflict, whisk.MsgConcurrentUpdate, nil)
	case !errors.Is(err, sql.ErrNoRows):
		return whisk.Entity{}, dbErr(op, err)
	case o.ExpectRev == 0:
		return whisk.Entity{}, whisk.E(op, whisk.Conflict, whisk.MsgWrongCollection, nil)
	}
	return whisk.Entity{}, s.missing(ctx, tx, op, e.Kind, e.Namespace, e.Name)
}

func (s *Store) deleteEntity(ctx context.Context, tx *sql.Tx, op string, o store.EntityOp) (whisk.Entity, error) {
	e := whisk.Entity{Kind: o.Entity.Kind, Namespace: o.Entity.Namespace, Name: o.Entity.Name}
	var doc string
	err := tx.QueryRowContext(ctx,
		`DELETE FROM entities WHERE namespace = ? AND kind = ? AND name = ? AND (? = 0 OR rev = ?)
		 RETURNING publish, rev, updated, doc`,
		e.Namespace, string(e.Kind), e.Name, o.ExpectRev, o.ExpectRev,
	).Scan(&e.Publish, &e.Rev, &e.Updated, &doc)
	e.Doc = json.RawMessage(doc)
	if err == nil {
		return e, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return whisk.Entity{}, dbErr(op, err)
	}
	if o.ExpectRev != 0 {
		if _, err := getEntity(ctx, tx, e.Kind, e.Namespace, e.Name); err == nil {
			return whisk.Entity{}, whisk.E(op, whisk.Conflict, whisk.MsgConcurrentUpdate, nil)
		}
	}
	return whisk.Entity{}, s.missing(ctx, tx, op, e.Kind, e.Namespace, e.Name)
}

// ListEntities returns entities of a kind, newest first; see store.Store.
func (s *Store) ListEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f store.EntityFilter) ([]whisk.Entity, error) {
	const op = "sqlite.ListEntities"
	rows, err := s.r.QueryContext(ctx,
		`SELECT namespace, name, publish, rev, updated, doc FROM entities
		 WHERE kind = ? AND (? = '' OR namespace = ?) AND (? = 0 OR publish)
		 ORDER BY updated DESC, namespace, name LIMIT ? OFFSET ?`,
		string(kind), namespace, namespace, f.PublicOnly, sqlLimit(f.Limit), max(f.Skip, 0))
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []whisk.Entity{}
	for rows.Next() {
		e := whisk.Entity{Kind: kind}
		var doc string
		if err := rows.Scan(&e.Namespace, &e.Name, &e.Publish, &e.Rev, &e.Updated, &doc); err != nil {
			return nil, dbErr(op, err)
		}
		e.Doc = json.RawMessage(doc)
		out = append(out, e)
	}
	return out, dbErr(op, rows.Err())
}

// CountEntities counts what ListEntities would return without paging.
func (s *Store) CountEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f store.EntityFilter) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx,
		`SELECT count(*) FROM entities WHERE kind = ? AND (? = '' OR namespace = ?) AND (? = 0 OR publish)`,
		string(kind), namespace, namespace, f.PublicOnly).Scan(&n)
	return n, dbErr("sqlite.CountEntities", err)
}

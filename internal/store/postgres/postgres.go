// Package postgres implements store.Store on PostgreSQL through pgx
// (github.com/jackc/pgx/v5 and its connection pool). It is Eddy's store for
// clusters, where several controllers and invokers share one database.
//
// The schema mirrors store/sqlite: schema_version (how many migrations were
// applied), identities (keys, as salted hashes), namespace_limits, actions, entities (packages,
// triggers, rules, API documents, alarms) and activations; entities are kept as JSONB
// documents next to the columns the queries need. Open applies pending
// migrations in one transaction that first takes a transaction-scoped
// advisory lock, so several processes starting at once against a fresh
// database migrate it exactly once and the others wait, then see it done.
//
// Behaviour matches store/sqlite and the storetest contract: revisions start
// at 1 and compare-and-swap through UPDATE ... WHERE rev = $n; creating over
// an existing action is a Conflict (whisk.MsgExists), updating a stale or
// missing one a Conflict (whisk.MsgConcurrentUpdate); lists are ordered
// byte-wise (the key columns use the "C" collation, whatever the database's
// default collation is), activations newest first with ties by activation id
// ascending; a limit of 0 means no limit.
//
// Errors carry whisk kinds: NotFound for a missing row, Conflict for a
// unique violation, Timeout when a deadline passed (the context's, the
// Store's DefaultOpTimeout on every operation, or the server's
// statement_timeout), Unavailable when the server cannot be reached
// or is shutting down, Internal otherwise; the driver's error is always the
// wrapped cause.
//
// Two differences from SQLite follow from JSONB, and neither changes what a
// JSON reader sees: objects inside stored documents (parameter values,
// results) come back with their keys in JSONB's order and numbers in
// PostgreSQL's numeric form (1e2 becomes 100); and JSONB cannot hold the
// character U+0000 nor an unpaired UTF-16 surrogate escape, so these are
// stored as U+FFFD (see sanitizeJSON) rather than failing the write, which
// would lose an activation record because its action printed a NUL.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// connectTimeout bounds one connection attempt when the URL does not set
// connect_timeout, so that Open fails fast on an unreachable server.
const connectTimeout = 5 * time.Second

// DefaultOpTimeout bounds one operation of the Store (a query and the wait
// for a pooled connection) when the caller's context has no earlier
// deadline, so that a server that hangs (frozen, or behind a network
// partition that drops packets) makes calls fail with kind Timeout instead
// of blocking their callers until TCP gives up. A server that is down
// refuses connections and calls fail at once with kind Unavailable.
const DefaultOpTimeout = 10 * time.Second

// migrateLockID is the advisory lock key that serializes migrations
// ("eddy" "migr" in ASCII).
const migrateLockID int64 = 0x65646479_6d696772

// Store is a store.Store on PostgreSQL. It is safe for use by many
// goroutines and by many processes sharing the database.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	now  func() time.Time
	// opTimeout is DefaultOpTimeout (tests shorten it).
	opTimeout time.Duration
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, as libpq takes; pool_max_conns and the other pgxpool
// settings may be added to it) and applies any pending migration. It fails
// within about 5 s (or the URL's connect_timeout) with an Unavailable error
// naming the server when the server cannot be reached.
func Open(ctx context.Context, url string, log *slog.Logger) (*Store, error) {
	const op = "postgres.Open"
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors redact the password.
		return nil, whisk.E(op, whisk.Invalid, "invalid PostgreSQL connection URL", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "eddy"
	}
	where := fmt.Sprintf("%s:%d database %q", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, whisk.E(op, whisk.Internal, "", fmt.Errorf("postgres: %w", err))
	}
	s := &Store{pool: pool, log: log, now: time.Now, opTimeout: DefaultOpTimeout}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		kind := whisk.Unavailable
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			kind = whisk.Timeout
		}
		return nil, whisk.E(op, kind, "", fmt.Errorf("postgres: cannot connect to %s: %w", where, err))
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.hashPlainKeys(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	log.Debug("postgres store open", "server", where)
	return s, nil
}

// bound gives ctx the Store's operation timeout unless its own deadline
// is earlier.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.opTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.opTimeout)
}

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// migrations are applied in order; schema_version holds how many were.
// Never edit an applied migration: append a new one.
//
// Text keys use the "C" collation so that ORDER BY is byte-wise, as in
// SQLite, and independent of the database's locale.
var migrations = []string{
	// 1: the initial schema.
	`CREATE TABLE identities (
		uuid      TEXT COLLATE "C" PRIMARY KEY,
		namespace TEXT COLLATE "C" NOT NULL,
		subject   TEXT  NOT NULL,
		key       TEXT  NOT NULL,
		limits    JSONB NOT NULL -- whisk.NamespaceLimits
	);
	CREATE INDEX identities_namespace ON identities (namespace);
	CREATE TABLE actions (
		namespace TEXT COLLATE "C" NOT NULL,
		name      TEXT COLLATE "C" NOT NULL,
		rev       BIGINT NOT NULL,
		updated   BIGINT NOT NULL, -- epoch ms
		doc       JSONB  NOT NULL, -- whisk.Action, code included
		PRIMARY KEY (namespace, name)
	);
	CREATE TABLE activations (
		activation_id TEXT COLLATE "C" PRIMARY KEY,
		namespace     TEXT COLLATE "C" NOT NULL,
		name          TEXT COLLATE "C" NOT NULL,
		start         BIGINT NOT NULL, -- epoch ms
		"end"         BIGINT NOT NULL, -- epoch ms
		doc           JSONB  NOT NULL  -- whisk.Activation
	);
	CREATE INDEX activations_ns_start ON activations (namespace, start DESC, activation_id);
	CREATE INDEX activations_ns_name_start ON activations (namespace, name, start DESC, activation_id);`,
	// 2: limits belong to the namespace, not to one of its keys; the
	// identities.limits column is kept (as '{}') but no longer read.
	`CREATE TABLE namespace_limits (
		namespace TEXT COLLATE "C" PRIMARY KEY,
		limits    JSONB NOT NULL -- whisk.NamespaceLimits
	);
	INSERT INTO namespace_limits (namespace, limits)
		SELECT DISTINCT ON (namespace) namespace, limits FROM identities
		WHERE limits <> '{}'::jsonb ORDER BY namespace, uuid;
	UPDATE identities SET limits = '{}'::jsonb;
	CREATE INDEX identities_subject ON identities (subject, namespace);`,
	// 3: the entities other than actions (whisk.Entity): packages,
	// triggers, rules, API documents, alarms. Packages, triggers and rules
	// share names within a namespace (entities_shared_names; actions are
	// checked by the writes).
	`CREATE TABLE entities (
		namespace TEXT COLLATE "C" NOT NULL,
		kind      TEXT COLLATE "C" NOT NULL,
		name      TEXT COLLATE "C" NOT NULL,
		publish   BOOLEAN NOT NULL,
		rev       BIGINT  NOT NULL,
		updated   BIGINT  NOT NULL, -- epoch ms
		doc       JSONB   NOT NULL, -- the kind's own document
		PRIMARY KEY (namespace, kind, name)
	);
	CREATE INDEX entities_list ON entities (kind, namespace, updated DESC, name);
	CREATE UNIQUE INDEX entities_shared_names ON entities (namespace, name)
		WHERE kind IN ('package', 'trigger', 'rule');`,
	// keys: identities keep a salted hash of their key (key_hash, a
	// whisk.HashKey result), never the key; key stays '' once hashed.
	// hashPlainKeys (run by every Open) hashes the keys this migration
	// finds, so an old database is migrated at start.
	`ALTER TABLE identities ADD COLUMN IF NOT EXISTS key_hash TEXT NOT NULL DEFAULT '';`,
	// blocked subjects (eddy admin user block): true on every key of one.
	`ALTER TABLE identities ADD COLUMN IF NOT EXISTS blocked BOOLEAN NOT NULL DEFAULT false;`,
}

// hashPlainKeys replaces every plain key still in identities.key (a
// database written before keys were hashed) with its hash in key_hash.
// Each row is replaced only if its key is still the one read, so
// concurrent Opens are safe; once done, it is a query that finds nothing.
func (s *Store) hashPlainKeys(ctx context.Context) error {
	const op = "postgres.hashPlainKeys"
	rows, err := s.pool.Query(ctx, `SELECT uuid, key FROM identities WHERE key <> ''`)
	if err != nil {
		return dbErr(op, err)
	}
	plain := map[string]string{}
	for rows.Next() {
		var uuid, key string
		if err := rows.Scan(&uuid, &key); err != nil {
			rows.Close()
			return dbErr(op, err)
		}
		plain[uuid] = key
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return dbErr(op, err)
	}
	for uuid, key := range plain {
		if _, err := s.pool.Exec(ctx, `UPDATE identities SET key_hash = $1, key = '' WHERE uuid = $2 AND key = $3`,
			whisk.HashKey(key), uuid, key); err != nil {
			return dbErr(op, err)
		}
	}
	if len(plain) > 0 {
		s.log.Info("postgres: stored keys replaced by their hashes", "identities", len(plain))
	}
	return nil
}

// migrate applies pending migrations in one transaction, under an advisory
// lock so that concurrent Opens take turns.
func (s *Store) migrate(ctx context.Context) error {
	const op = "postgres.migrate"
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbErr(op, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockID); err != nil {
		return dbErr(op, err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return dbErr(op, err)
	}
	var v int
	err = tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return dbErr(op, err)
		}
	case err != nil:
		return dbErr(op, err)
	}
	if v > len(migrations) {
		return whisk.E(op, whisk.Internal, "", fmt.Errorf("database schema version %d is newer than this binary's %d", v, len(migrations)))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return dbErr(op, fmt.Errorf("migration %d: %w", i+1, err))
		}
	}
	if v < len(migrations) {
		if _, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, len(migrations)); err != nil {
			return dbErr(op, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return dbErr(op, err)
	}
	if v < len(migrations) {
		s.log.Info("postgres schema migrated", "from", v, "to", len(migrations))
	}
	return nil
}

// dbErr wraps a driver error with the whisk kind it stands for; nil stays
// nil.
func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	kind, msg := whisk.Internal, ""
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		kind, msg = whisk.NotFound, whisk.MsgNotFound
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		kind = whisk.Timeout
	case errors.As(err, &pgErr):
		switch {
		case pgErr.Code == "23505": // unique_violation
			kind, msg = whisk.Conflict, whisk.MsgExists
		case pgErr.Code == "57014": // query_canceled (statement_timeout)
			kind = whisk.Timeout
		case strings.HasPrefix(pgErr.Code, "08"), // connection_exception
			strings.HasPrefix(pgErr.Code, "57P"): // admin_shutdown, crash_shutdown, cannot_connect_now
			kind = whisk.Unavailable
		}
	case errors.As(err, &connErr), errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		kind = whisk.Unavailable
	}
	return whisk.E(op, kind, msg, fmt.Errorf("postgres: %w", err))
}

// encode marshals v for a JSONB column.
func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return sanitizeJSON(b), nil
}

// ---- identities ----

// identitySelect reads identities with their namespace's limits.
const identitySelect = `SELECT i.uuid, i.namespace, i.subject, i.key_hash, i.blocked, l.limits
	FROM identities i LEFT JOIN namespace_limits l ON l.namespace = i.namespace `

// scanIdentity scans one row of identitySelect.
func scanIdentity(op string, row pgx.Row) (whisk.Identity, error) {
	var id whisk.Identity
	var limits []byte
	if err := row.Scan(&id.UUID, &id.Namespace, &id.Subject, &id.KeyHash, &id.Blocked, &limits); err != nil {
		return whisk.Identity{}, dbErr(op, err)
	}
	if limits != nil {
		if err := json.Unmarshal(limits, &id.Limits); err != nil {
			return whisk.Identity{}, dbErr(op, fmt.Errorf("decode limits of %s: %w", id.Namespace, err))
		}
	}
	return id, nil
}

// IdentityByUUID returns the identity whose key has this UUID.
func (s *Store) IdentityByUUID(ctx context.Context, uuid string) (whisk.Identity, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return scanIdentity("postgres.IdentityByUUID", s.pool.QueryRow(ctx, identitySelect+`WHERE i.uuid = $1`, uuid))
}

// PutIdentity creates or replaces an identity (id.Limits is not stored).
func (s *Store) PutIdentity(ctx context.Context, id whisk.Identity) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.PutIdentity"
	hash, err := store.KeyHash(id)
	if err != nil {
		return whisk.E(op, whisk.Invalid, "", err)
	}
	_, err = s.pool.Exec(ctx,
		`INSERT INTO identities (uuid, namespace, subject, key, key_hash, limits) VALUES ($1, $2, $3, '', $4, '{}')
		 ON CONFLICT (uuid) DO UPDATE SET namespace = excluded.namespace, subject = excluded.subject,
		   key = '', key_hash = excluded.key_hash`,
		id.UUID, id.Namespace, id.Subject, hash)
	return dbErr(op, err)
}

// CreateIdentity implements store.Store.CreateIdentity in one transaction
// holding an advisory lock on the subject (creates of one subject are
// serialized) and one on the UUID.
func (s *Store) CreateIdentity(ctx context.Context, id whisk.Identity, check func([]whisk.Identity, *whisk.Identity) error) error {
	const op = "postgres.CreateIdentity"
	ctx, cancel := s.bound(ctx)
	defer cancel()
	hash, err := store.KeyHash(id)
	if err != nil {
		return whisk.E(op, whisk.Invalid, "", err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbErr(op, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('eddy.subject/' || $1)), pg_advisory_xact_lock(hashtext('eddy.uuid/' || $2))`,
		id.Subject, id.UUID); err != nil {
		return dbErr(op, err)
	}
	rows, err := tx.Query(ctx, identitySelect+`WHERE i.subject = $1 OR i.uuid = $2 ORDER BY i.namespace, i.uuid`, id.Subject, id.UUID)
	if err != nil {
		return dbErr(op, err)
	}
	var keys []whisk.Identity
	var holder *whisk.Identity
	for rows.Next() {
		got, err := scanIdentity(op, rows)
		if err != nil {
			rows.Close()
			return err
		}
		if got.UUID == id.UUID {
			holder = &got
		}
		if got.Subject == id.Subject {
			keys = append(keys, got)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return dbErr(op, err)
	}
	if err := check(keys, holder); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx,
		`INSERT INTO identities (uuid, namespace, subject, key, key_hash, limits) VALUES ($1, $2, $3, '', $4, '{}')`,
		id.UUID, id.Namespace, id.Subject, hash); err != nil {
		return dbErr(op, err)
	}
	return dbErr(op, tx.Commit(ctx))
}

// SetSubjectBlocked blocks or unblocks every key of subject and returns
// how many keys it has.
func (s *Store) SetSubjectBlocked(ctx context.Context, subject string, blocked bool) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE identities SET blocked = $1 WHERE subject = $2`, blocked, subject)
	if err != nil {
		return 0, dbErr("postgres.SetSubjectBlocked", err)
	}
	return int(tag.RowsAffected()), nil
}

// ListIdentities returns the identities of a namespace ("" = all).
func (s *Store) ListIdentities(ctx context.Context, namespace string) ([]whisk.Identity, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.ListIdentities"
	rows, err := s.pool.Query(ctx, identitySelect+`WHERE $1 = '' OR i.namespace = $1
		ORDER BY i.subject COLLATE "C", i.namespace, i.uuid`, namespace)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []whisk.Identity{}
	for rows.Next() {
		id, err := scanIdentity(op, rows)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, dbErr(op, rows.Err())
}

// DeleteIdentity removes the key with this UUID.
func (s *Store) DeleteIdentity(ctx context.Context, uuid string) error {
	return s.deleteRow(ctx, "postgres.DeleteIdentity", `DELETE FROM identities WHERE uuid = $1`, uuid)
}

// deleteRow runs a DELETE of one row; no row is NotFound.
func (s *Store) deleteRow(ctx context.Context, op, query string, args ...any) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, query, args...)
	if err != nil {
		return dbErr(op, err)
	}
	if tag.RowsAffected() == 0 {
		return whisk.E(op, whisk.NotFound, whisk.MsgNotFound, nil)
	}
	return nil
}

// ---- namespace limits ----

// GetNamespaceLimits returns the limits set for a namespace.
func (s *Store) GetNamespaceLimits(ctx context.Context, namespace string) (whisk.NamespaceLimits, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.GetNamespaceLimits"
	var doc []byte
	if err := s.pool.QueryRow(ctx, `SELECT limits FROM namespace_limits WHERE namespace = $1`, namespace).Scan(&doc); err != nil {
		return whisk.NamespaceLimits{}, dbErr(op, err)
	}
	var l whisk.NamespaceLimits
	if err := json.Unmarshal(doc, &l); err != nil {
		return whisk.NamespaceLimits{}, dbErr(op, fmt.Errorf("decode limits of %s: %w", namespace, err))
	}
	return l, nil
}

// PutNamespaceLimits sets a namespace's limits.
func (s *Store) PutNamespaceLimits(ctx context.Context, namespace string, l whisk.NamespaceLimits) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.PutNamespaceLimits"
	doc, err := encode(l)
	if err != nil {
		return whisk.E(op, whisk.Internal, "", err)
	}
	_, err = s.pool.Exec(ctx,
		`INSERT INTO namespace_limits (namespace, limits) VALUES ($1, $2)
		 ON CONFLICT (namespace) DO UPDATE SET limits = excluded.limits`, namespace, doc)
	return dbErr(op, err)
}

// DeleteNamespaceLimits removes a namespace's limits.
func (s *Store) DeleteNamespaceLimits(ctx context.Context, namespace string) error {
	return s.deleteRow(ctx, "postgres.DeleteNamespaceLimits", `DELETE FROM namespace_limits WHERE namespace = $1`, namespace)
}

// ---- actions ----

func decodeAction(op string, rev, updated int64, doc []byte) (whisk.Action, error) {
	var a whisk.Action
	if err := json.Unmarshal(doc, &a); err != nil {
		return whisk.Action{}, dbErr(op, fmt.Errorf("decode action: %w", err))
	}
	a.Rev = rev
	a.Updated = updated
	return a, nil
}

// GetAction returns an action with its code and Rev.
func (s *Store) GetAction(ctx context.Context, namespace, name string) (whisk.Action, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.GetAction"
	var rev, updated int64
	var doc []byte
	err := s.pool.QueryRow(ctx,
		`SELECT rev, updated, doc FROM actions WHERE namespace = $1 AND name = $2`, namespace, name,
	).Scan(&rev, &updated, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return whisk.Action{}, missing(ctx, s.pool, op, err, "", namespace, name)
	}
	if err != nil {
		return whisk.Action{}, dbErr(op, err)
	}
	return decodeAction(op, rev, updated, doc)
}

// PutAction creates (expectRev 0) or replaces (compare-and-swap on Rev) an
// action; see store.Store. The stored document is a as given: a replace
// keeps nothing of the previous version.
func (s *Store) PutAction(ctx context.Context, a whisk.Action, expectRev int64) (whisk.Action, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.PutAction"
	if expectRev < 0 {
		return whisk.Action{}, whisk.E(op, whisk.Invalid, fmt.Sprintf("invalid revision %d", expectRev), nil)
	}
	a.Rev = expectRev + 1
	a.Updated = s.now().UnixMilli()
	doc, err := encode(a)
	if err != nil {
		return whisk.Action{}, whisk.E(op, whisk.Internal, "", err)
	}
	var tag pgconn.CommandTag
	if expectRev == 0 {
		// A package, trigger or rule of the namespace may hold the name.
		tag, err = s.pool.Exec(ctx,
			`INSERT INTO actions (namespace, name, rev, updated, doc) SELECT $1, $2, $3, $4, $5
			 WHERE NOT EXISTS (SELECT 1 FROM entities WHERE namespace = $1 AND name = $2 AND kind IN `+sharedKinds+`)
			 ON CONFLICT (namespace, name) DO NOTHING`,
			a.Namespace, a.Name, a.Rev, a.Updated, doc)
	} else {
		tag, err = s.pool.Exec(ctx,
			`UPDATE actions SET rev = $1, updated = $2, doc = $3 WHERE namespace = $4 AND name = $5 AND rev = $6`,
			a.Rev, a.Updated, doc, a.Namespace, a.Name, expectRev)
	}
	if err != nil {
		return whisk.Action{}, dbErr(op, err)
	}
	if tag.RowsAffected() == 0 {
		if expectRev == 0 {
			if err := missing(ctx, s.pool, op, nil, "", a.Namespace, a.Name); !whisk.IsKind(err, whisk.NotFound) {
				return whisk.Action{}, err
			}
			return whisk.Action{}, whisk.E(op, whisk.Conflict, whisk.MsgExists, nil)
		}
		return whisk.Action{}, whisk.E(op, whisk.Conflict, whisk.MsgConcurrentUpdate, nil)
	}
	return a, nil
}

// DeleteAction removes an action and returns it as it was.
func (s *Store) DeleteAction(ctx context.Context, namespace, name string) (whisk.Action, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.DeleteAction"
	var rev, updated int64
	var doc []byte
	err := s.pool.QueryRow(ctx,
		`DELETE FROM actions WHERE namespace = $1 AND name = $2 RETURNING rev, updated, doc`, namespace, name,
	).Scan(&rev, &updated, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return whisk.Action{}, missing(ctx, s.pool, op, err, "", namespace, name)
	}
	if err != nil {
		return whisk.Action{}, dbErr(op, err)
	}
	return decodeAction(op, rev, updated, doc)
}

// sqlLimit maps "0 or less = no limit" to NULL, which LIMIT takes as none.
func sqlLimit(limit int) *int64 {
	if limit <= 0 {
		return nil
	}
	n := int64(limit)
	return &n
}

// ListActions returns the actions of a namespace sorted by name, without
// code (Exec.Code is empty: the server drops it from the document). limit 0
// means no limit.
func (s *Store) ListActions(ctx context.Context, namespace string, skip, limit int) ([]whisk.Action, error) {
	return s.listActions(ctx, "postgres.ListActions", `WHERE namespace = $1`, []any{namespace}, skip, limit)
}

// ListPackageActions returns the actions of package pkg of a namespace
// (stored as "pkg/<name>") sorted by name, without code.
func (s *Store) ListPackageActions(ctx context.Context, namespace, pkg string, skip, limit int) ([]whisk.Action, error) {
	return s.listActions(ctx, "postgres.ListPackageActions", `WHERE namespace = $1 AND starts_with(name, $2)`,
		[]any{namespace, pkg + "/"}, skip, limit)
}

// CountPackageActions counts the actions of package pkg of a namespace.
func (s *Store) CountPackageActions(ctx context.Context, namespace, pkg string) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM actions WHERE namespace = $1 AND starts_with(name, $2)`,
		namespace, pkg+"/").Scan(&n)
	return n, dbErr("postgres.CountPackageActions", err)
}

// listActions lists the actions a WHERE clause selects (its arguments are
// $1..$n), by name, without code.
func (s *Store) listActions(ctx context.Context, op, where string, args []any, skip, limit int) ([]whisk.Action, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	n := len(args)
	rows, err := s.pool.Query(ctx,
		`SELECT rev, updated, doc #- '{exec,code}' FROM actions `+where+`
		 ORDER BY name LIMIT $`+strconv.Itoa(n+1)+` OFFSET $`+strconv.Itoa(n+2),
		append(args, sqlLimit(limit), max(skip, 0))...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []whisk.Action{}
	for rows.Next() {
		var rev, updated int64
		var doc []byte
		if err := rows.Scan(&rev, &updated, &doc); err != nil {
			return nil, dbErr(op, err)
		}
		a, err := decodeAction(op, rev, updated, doc)
		if err != nil {
			return nil, err
		}
		a.Exec.Code = ""
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(op, err)
	}
	return out, nil
}

// CountActions counts the actions of a namespace.
func (s *Store) CountActions(ctx context.Context, namespace string) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM actions WHERE namespace = $1`, namespace).Scan(&n)
	return n, dbErr("postgres.CountActions", err)
}

// ---- activations ----

// PutActivation stores a record; storing the same id again keeps the
// first record (store.Store.PutActivation).
func (s *Store) PutActivation(ctx context.Context, a whisk.Activation) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.PutActivation"
	doc, err := a.AppendJSON(nil) // as encode, without reflection
	if err != nil {
		return whisk.E(op, whisk.Internal, "", err)
	}
	doc = sanitizeJSON(doc)
	_, err = s.pool.Exec(ctx,
		`INSERT INTO activations (activation_id, namespace, name, start, "end", doc) VALUES ($1, $2, $3, $4, $5, $6)
		 ON CONFLICT (activation_id) DO NOTHING`,
		string(a.ActivationID), a.Namespace, a.FilterName(), a.Start, a.End, doc)
	return dbErr(op, err)
}

// GetActivation returns one record of a namespace.
func (s *Store) GetActivation(ctx context.Context, namespace string, id whisk.ActivationID) (whisk.Activation, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.GetActivation"
	var doc []byte
	err := s.pool.QueryRow(ctx,
		`SELECT doc FROM activations WHERE activation_id = $1 AND namespace = $2`, string(id), namespace,
	).Scan(&doc)
	if err != nil {
		return whisk.Activation{}, dbErr(op, err)
	}
	var a whisk.Activation
	if err := json.Unmarshal(doc, &a); err != nil {
		return whisk.Activation{}, dbErr(op, fmt.Errorf("decode activation %s: %w", id, err))
	}
	return a, nil
}

// activationWhere builds the WHERE clause and arguments of f.
func activationWhere(namespace string, f store.ActivationFilter) (string, []any) {
	var b strings.Builder
	args := []any{namespace}
	b.WriteString(`WHERE namespace = $1`)
	if f.Name != "" {
		args = append(args, f.Name)
		fmt.Fprintf(&b, ` AND name = $%d`, len(args))
	}
	if f.Since != 0 {
		args = append(args, f.Since)
		fmt.Fprintf(&b, ` AND start >= $%d`, len(args))
	}
	if f.Upto != 0 {
		args = append(args, f.Upto)
		fmt.Fprintf(&b, ` AND start <= $%d`, len(args))
	}
	return b.String(), args
}

// ListActivations returns the full records matching f, newest first (by
// Start descending, then by activation id ascending).
func (s *Store) ListActivations(ctx context.Context, namespace string, f store.ActivationFilter) ([]whisk.Activation, error) {
	out := []whisk.Activation{}
	err := s.EachActivation(ctx, namespace, f, func(a whisk.Activation) error {
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, retag(err, "postgres.ListActivations")
	}
	return out, nil
}

// EachActivation calls fn with each record matching f, newest first, one
// row at a time (store.Store.EachActivation). The Store's operation
// timeout bounds the whole reading, fn's time included.
func (s *Store) EachActivation(ctx context.Context, namespace string, f store.ActivationFilter, fn func(whisk.Activation) error) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const op = "postgres.EachActivation"
	where, args := activationWhere(namespace, f)
	args = append(args, sqlLimit(f.Limit), max(f.Skip, 0))
	col := `doc`
	if f.Summary {
		col = `doc - 'logs' #- '{response,result}'`
	}
	rows, err := s.pool.Query(ctx,
		fmt.Sprintf(`SELECT %s FROM activations %s ORDER BY start DESC, activation_id LIMIT $%d OFFSET $%d`,
			col, where, len(args)-1, len(args)),
		args...)
	if err != nil {
		return dbErr(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return dbErr(op, err)
		}
		var a whisk.Activation
		if err := json.Unmarshal(doc, &a); err != nil {
			return dbErr(op, fmt.Errorf("decode activation: %w", err))
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return dbErr(op, rows.Err())
}

// CountActivations counts the records matching f (Skip and Limit ignored).
func (s *Store) CountActivations(ctx context.Context, namespace string, f store.ActivationFilter) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	where, args := activationWhere(namespace, f)
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM activations `+where, args...).Scan(&n)
	return n, dbErr("postgres.CountActivations", err)
}

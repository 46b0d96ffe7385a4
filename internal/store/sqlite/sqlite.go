// Package sqlite implements store.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go). It is Eddy's default store for standalone.
//
// The database file holds six tables: schema_version (the migrations
// applied so far), identities (keys, as salted hashes), namespace_limits, actions, entities
// (packages, triggers, rules, API documents, alarms) and activations;
// entities are kept as JSON documents next to the columns the queries
// need. Open applies pending migrations.
//
// Concurrency: the Store is safe for use by many goroutines. Writes go
// through one connection (SQLite serializes writers anyway), so concurrent
// writers queue in the pool instead of failing with SQLITE_BUSY; reads use a
// separate pool of read-only connections, which WAL mode lets run alongside
// the writer. Every connection also sets a busy timeout, for other processes
// that open the same file.
//
// Activation records, the one write on every invocation, are group
// committed: PutActivation hands its record to a single writer goroutine,
// which writes every record waiting at that moment in one transaction (up
// to maxBatch), so that many concurrent writers pay for one commit instead
// of one each. Nothing waits for a batch to fill, unless Options.CommitDelay
// paces the commits of a stream: a record after a quiet spell is written
// at once. Each caller gets its own answer and returns only once its record
// is committed (nil) or known not written (an error); if a record of a
// batch fails, the others are written again one by one, so one bad record
// never fails its neighbours.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// busyTimeoutMs is how long a connection waits for a lock held by another
// connection (another process, or a checkpoint) before failing.
const busyTimeoutMs = 10000

// maxBatch is the most activation records written in one transaction.
const maxBatch = 256

// Store is a store.Store on SQLite.
type Store struct {
	w   *sql.DB // the one write connection
	r   *sql.DB // read-only connections; == w for in-memory databases
	log *slog.Logger
	now func() time.Time

	putAct      *sql.Stmt     // the activation upsert, prepared on w
	commitDelay time.Duration // Options.CommitDelay
	acts        chan *actReq  // to the activation writer (unbuffered)
	closing     chan struct{} // closed by Close
	closeOnce   sync.Once
	writerDone  chan struct{} // closed when the writer has returned
	batches     atomic.Uint64 // transactions of more than one record, for tests
	recorded    atomic.Uint64 // records written, for tests
	commits     atomic.Uint64 // transactions that wrote records, for benchmarks
}

// actReq is one PutActivation waiting for the writer.
type actReq struct {
	ctx  context.Context
	args []any
	done chan error // buffered: the writer never blocks on it
}

var _ store.Store = (*Store)(nil)

// Options tunes a Store beyond Open's defaults.
type Options struct {
	// CommitDelay, when positive, paces commits while records are
	// arriving (the previous commit ended less than streamWindow ago): a
	// batch waits for more records until CommitDelay after the previous
	// commit (or until it holds maxBatch), so that a steady stream is
	// written in one transaction per CommitDelay instead of one per
	// commit's duration; a write after a quiet spell commits at once. It
	// trades up to that much more latency of PutActivation (off the
	// response path in the invoker) for fewer, larger commits (each
	// commit costs about 200 µs of CPU, most of it writing WAL frames):
	// see BenchmarkPutActivationPace. Only callers that write
	// concurrently gain, and a batch holds at most as many records as
	// there are concurrent callers, since each waits for its own commit.
	// 0, the default, never waits.
	CommitDelay time.Duration
}

// streamWindow: a record arriving less than this (or CommitDelay, when
// longer) after the previous commit is part of a stream, and waits until
// CommitDelay after that commit for company.
const streamWindow = 20 * time.Millisecond

// Open opens the database at path, creating the file and the schema when
// they do not exist and applying any pending migration. The path ":memory:"
// opens a private in-memory database (one connection, for tests).
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	return OpenWith(ctx, path, log, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, log *slog.Logger, opts Options) (*Store, error) {
	const op = "sqlite.Open"
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, whisk.E(op, whisk.Invalid, fmt.Sprintf("invalid database path %q", path), nil)
	}
	s := &Store{log: log, now: time.Now, commitDelay: max(opts.CommitDelay, 0)}

	memory := path == ":memory:"
	if !memory {
		if err := privateFiles(path); err != nil {
			return nil, whisk.E(op, whisk.Internal, "", err)
		}
	}
	params := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=1", busyTimeoutMs)
	wdsn := path + "?" + params + "&_txlock=immediate"
	if !memory {
		wdsn += "&_journal_mode=WAL&_synchronous=NORMAL"
	}
	w, err := sql.Open("sqlite", wdsn)
	if err != nil {
		return nil, whisk.E(op, whisk.Internal, "", fmt.Errorf("open %s: %w", path, err))
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s.w = w

	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := s.hashPlainKeys(ctx); err != nil {
		w.Close()
		return nil, err
	}

	if memory {
		s.r = w
	} else {
		r, err := sql.Open("sqlite", path+"?"+params+"&_query_only=1")
		if err != nil {
			w.Close()
			return nil, whisk.E(op, whisk.Internal, "", fmt.Errorf("open %s: %w", path, err))
		}
		n := max(4, runtime.GOMAXPROCS(0))
		r.SetMaxOpenConns(n)
		r.SetMaxIdleConns(n)
		if err := r.PingContext(ctx); err != nil {
			r.Close()
			w.Close()
			return nil, dbErr(op, err)
		}
		s.r = r
	}
	s.putAct, err = w.PrepareContext(ctx, putActivationSQL)
	if err != nil {
		if s.r != w {
			s.r.Close()
		}
		w.Close()
		return nil, dbErr(op, err)
	}
	s.acts = make(chan *actReq)
	s.closing = make(chan struct{})
	s.writerDone = make(chan struct{})
	go s.activationWriter()
	log.Debug("sqlite store open", "path", path)
	return s, nil
}

// privateFiles creates the database file readable by its owner only
// (0600) and makes an existing one (and its -wal and -shm files) so; SQLite
// creates the -wal and -shm files with the database file's mode.
func privateFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	return nil
}

// Close waits for the activation writer to finish the batch it is writing
// (PutActivation calls not yet taken fail), then closes the database.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.writerDone
	var rerr error
	if s.r != s.w {
		rerr = s.r.Close()
	}
	return errors.Join(s.putAct.Close(), s.w.Close(), rerr)
}

// migrations are applied in order; schema_version holds how many were.
// Never edit an applied migration: append a new one.
var migrations = []string{
	// 1: the initial schema.
	`CREATE TABLE identities (
		uuid      TEXT PRIMARY KEY,
		namespace TEXT NOT NULL,
		subject   TEXT NOT NULL,
		key       TEXT NOT NULL,
		limits    TEXT NOT NULL -- JSON whisk.NamespaceLimits
	);
	CREATE INDEX identities_namespace ON identities (namespace);
	CREATE TABLE actions (
		namespace TEXT    NOT NULL,
		name      TEXT    NOT NULL,
		rev       INTEGER NOT NULL,
		updated   INTEGER NOT NULL, -- epoch ms
		doc       TEXT    NOT NULL, -- JSON whisk.Action, code included
		PRIMARY KEY (namespace, name)
	);
	CREATE TABLE activations (
		activation_id TEXT PRIMARY KEY,
		namespace     TEXT    NOT NULL,
		name          TEXT    NOT NULL,
		start         INTEGER NOT NULL, -- epoch ms
		"end"         INTEGER NOT NULL, -- epoch ms
		doc           TEXT    NOT NULL  -- JSON whisk.Activation
	);
	CREATE INDEX activations_ns_start ON activations (namespace, start DESC, activation_id);
	CREATE INDEX activations_ns_name_start ON activations (namespace, name, start DESC, activation_id);`,
	// 2: limits belong to the namespace, not to one of its keys; the
	// identities.limits column is kept (as '{}') but no longer read.
	`CREATE TABLE namespace_limits (
		namespace TEXT PRIMARY KEY,
		limits    TEXT NOT NULL -- JSON whisk.NamespaceLimits
	);
	INSERT INTO namespace_limits (namespace, limits)
		SELECT namespace, min(limits) FROM identities WHERE limits <> '{}' GROUP BY namespace;
	UPDATE identities SET limits = '{}';
	CREATE INDEX identities_subject ON identities (subject, namespace);`,
	// 3: the entities other than actions (whisk.Entity): packages,
	// triggers, rules, API documents, alarms. Packages, triggers and rules
	// share names within a namespace (entities_shared_names; actions are
	// checked by the writes).
	`CREATE TABLE entities (
		namespace TEXT    NOT NULL,
		kind      TEXT    NOT NULL,
		name      TEXT    NOT NULL,
		publish   INTEGER NOT NULL,
		rev       INTEGER NOT NULL,
		updated   INTEGER NOT NULL, -- epoch ms
		doc       TEXT    NOT NULL, -- JSON, the kind's own document
		PRIMARY KEY (namespace, kind, name)
	);
	CREATE INDEX entities_list ON entities (kind, namespace, updated DESC, name);
	CREATE UNIQUE INDEX entities_shared_names ON entities (namespace, name)
		WHERE kind IN ('package', 'trigger', 'rule');`,
	// keys: identities keep a salted hash of their key (key_hash, a
	// whisk.HashKey result), never the key; key stays '' once hashed.
	// hashPlainKeys (run by every Open) hashes the keys this migration
	// finds, so an old database is migrated at start.
	`ALTER TABLE identities ADD COLUMN key_hash TEXT NOT NULL DEFAULT '';`,
	// blocked subjects (eddy admin user block): 1 on every key of one.
	`ALTER TABLE identities ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;`,
}

// hashPlainKeys replaces every plain key still in identities.key (a
// database written before keys were hashed) with its hash in key_hash.
// It is idempotent and, once done, a query that finds nothing.
func (s *Store) hashPlainKeys(ctx context.Context) error {
	const op = "sqlite.hashPlainKeys"
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(op, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT uuid, key FROM identities WHERE key <> ''`)
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
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return dbErr(op, err)
	}
	for uuid, key := range plain {
		if _, err := tx.ExecContext(ctx, `UPDATE identities SET key_hash = ?, key = '' WHERE uuid = ?`,
			whisk.HashKey(key), uuid); err != nil {
			return dbErr(op, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return dbErr(op, err)
	}
	if len(plain) > 0 {
		s.log.Info("sqlite: stored keys replaced by their hashes", "identities", len(plain))
	}
	return nil
}

// migrate creates the schema_version table and applies pending migrations
// in one transaction.
func (s *Store) migrate(ctx context.Context) error {
	const op = "sqlite.migrate"
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(op, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return dbErr(op, err)
	}
	var v int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return dbErr(op, err)
		}
	case err != nil:
		return dbErr(op, err)
	}
	if v > len(migrations) {
		return whisk.E(op, whisk.Internal, "", fmt.Errorf("database schema version %d is newer than this binary's %d", v, len(migrations)))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return dbErr(op, fmt.Errorf("migration %d: %w", i+1, err))
		}
	}
	if v < len(migrations) {
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
			return dbErr(op, err)
		}
		s.log.Info("sqlite schema migrated", "from", v, "to", len(migrations))
	}
	return dbErr(op, tx.Commit())
}

// dbErr wraps a driver error; nil stays nil.
func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	kind := whisk.Internal
	if errors.Is(err, context.DeadlineExceeded) {
		kind = whisk.Timeout
	}
	return whisk.E(op, kind, "", fmt.Errorf("sqlite: %w", err))
}

func notFound(op string) error { return whisk.E(op, whisk.NotFound, whisk.MsgNotFound, nil) }

// ---- identities ----

// identitySelect reads identities with their namespace's limits.
const identitySelect = `SELECT i.uuid, i.namespace, i.subject, i.key_hash, i.blocked <> 0, l.limits
	FROM identities i LEFT JOIN namespace_limits l ON l.namespace = i.namespace `

// scanIdentity scans one row of identitySelect.
func scanIdentity(op string, row interface{ Scan(...any) error }) (whisk.Identity, error) {
	var id whisk.Identity
	var limits sql.NullString
	if err := row.Scan(&id.UUID, &id.Namespace, &id.Subject, &id.KeyHash, &id.Blocked, &limits); err != nil {
		return whisk.Identity{}, err
	}
	if limits.Valid {
		if err := json.Unmarshal([]byte(limits.String), &id.Limits); err != nil {
			return whisk.Identity{}, dbErr(op, fmt.Errorf("decode limits of %s: %w", id.Namespace, err))
		}
	}
	return id, nil
}

// IdentityByUUID returns the identity whose key has this UUID.
func (s *Store) IdentityByUUID(ctx context.Context, uuid string) (whisk.Identity, error) {
	const op = "sqlite.IdentityByUUID"
	id, err := scanIdentity(op, s.r.QueryRowContext(ctx, identitySelect+`WHERE i.uuid = ?`, uuid))
	if errors.Is(err, sql.ErrNoRows) {
		return whisk.Identity{}, notFound(op)
	}
	if err != nil {
		return whisk.Identity{}, dbErr(op, err)
	}
	return id, nil
}

// PutIdentity creates or replaces an identity (id.Limits is not stored).
// The key is stored hashed (whisk.HashKey of id.Key, or id.KeyHash when
// id.Key is empty).
func (s *Store) PutIdentity(ctx context.Context, id whisk.Identity) error {
	const op = "sqlite.PutIdentity"
	hash, err := store.KeyHash(id)
	if err != nil {
		return whisk.E(op, whisk.Invalid, "", err)
	}
	_, err = s.w.ExecContext(ctx,
		`INSERT INTO identities (uuid, namespace, subject, key, key_hash, limits) VALUES (?, ?, ?, '', ?, '{}')
		 ON CONFLICT (uuid) DO UPDATE SET namespace = excluded.namespace, subject = excluded.subject,
		   key = '', key_hash = excluded.key_hash`,
		id.UUID, id.Namespace, id.Subject, hash)
	return dbErr(op, err)
}

// CreateIdentity implements store.Store.CreateIdentity in one write
// transaction (BEGIN IMMEDIATE: writers of every process are serialized).
func (s *Store) CreateIdentity(ctx context.Context, id whisk.Identity, check func([]whisk.Identity, *whisk.Identity) error) error {
	const op = "sqlite.CreateIdentity"
	hash, err := store.KeyHash(id)
	if err != nil {
		return whisk.E(op, whisk.Invalid, "", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(op, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, identitySelect+`WHERE i.subject = ? OR i.uuid = ? ORDER BY i.namespace, i.uuid`, id.Subject, id.UUID)
	if err != nil {
		return dbErr(op, err)
	}
	var keys []whisk.Identity
	var holder *whisk.Identity
	for rows.Next() {
		got, err := scanIdentity(op, rows)
		if err != nil {
			rows.Close()
			return dbErr(op, err)
		}
		if got.UUID == id.UUID {
			holder = &got
		}
		if got.Subject == id.Subject {
			keys = append(keys, got)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return dbErr(op, err)
	}
	if err := check(keys, holder); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO identities (uuid, namespace, subject, key, key_hash, limits) VALUES (?, ?, ?, '', ?, '{}')`,
		id.UUID, id.Namespace, id.Subject, hash); err != nil {
		return dbErr(op, err)
	}
	return dbErr(op, tx.Commit())
}

// SetSubjectBlocked blocks or unblocks every key of subject and returns
// how many keys it has.
func (s *Store) SetSubjectBlocked(ctx context.Context, subject string, blocked bool) (int, error) {
	const op = "sqlite.SetSubjectBlocked"
	res, err := s.w.ExecContext(ctx, `UPDATE identities SET blocked = ? WHERE subject = ?`, blocked, subject)
	if err != nil {
		return 0, dbErr(op, err)
	}
	n, err := res.RowsAffected()
	return int(n), dbErr(op, err)
}

// ListIdentities returns the identities of a namespace ("" = all).
func (s *Store) ListIdentities(ctx context.Context, namespace string) ([]whisk.Identity, error) {
	const op = "sqlite.ListIdentities"
	rows, err := s.r.QueryContext(ctx, identitySelect+`WHERE ? = '' OR i.namespace = ?
		ORDER BY i.subject, i.namespace, i.uuid`, namespace, namespace)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []whisk.Identity{}
	for rows.Next() {
		id, err := scanIdentity(op, rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, id)
	}
	return out, dbErr(op, rows.Err())
}

// DeleteIdentity removes the key with this UUID.
func (s *Store) DeleteIdentity(ctx context.Context, uuid string) error {
	return s.deleteRow(ctx, "sqlite.DeleteIdentity", `DELETE FROM identities WHERE uuid = ?`, uuid)
}

// deleteRow runs a DELETE of one row; no row is NotFound.
func (s *Store) deleteRow(ctx context.Context, op, query string, args ...any) error {
	res, err := s.w.ExecContext(ctx, query, args...)
	if err != nil {
		return dbErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(op, err)
	}
	if n == 0 {
		return notFound(op)
	}
	return nil
}

// ---- namespace limits ----

// GetNamespaceLimits returns the limits set for a namespace.
func (s *Store) GetNamespaceLimits(ctx context.Context, namespace string) (whisk.NamespaceLimits, error) {
	const op = "sqlite.GetNamespaceLimits"
	var doc string
	err := s.r.QueryRowContext(ctx, `SELECT limits FROM namespace_limits WHERE namespace = ?`, namespace).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return whisk.NamespaceLimits{}, notFound(op)
	}
	if err != nil {
		return whisk.NamespaceLimits{}, dbErr(op, err)
	}
	var l whisk.NamespaceLimits
	if err := json.Unmarshal([]byte(doc), &l); err != nil {
		return whisk.NamespaceLimits{}, dbErr(op, fmt.Errorf("decode limits of %s: %w", namespace, err))
	}
	return l, nil
}

// PutNamespaceLimits sets a namespace's limits.
func (s *Store) PutNamespaceLimits(ctx context.Context, namespace string, l whisk.NamespaceLimits) error {
	const op = "sqlite.PutNamespaceLimits"
	doc, err := json.Marshal(l)
	if err != nil {
		return whisk.E(op, whisk.Internal, "", err)
	}
	_, err = s.w.ExecContext(ctx,
		`INSERT INTO namespace_limits (namespace, limits) VALUES (?, ?)
		 ON CONFLICT (namespace) DO UPDATE SET limits = excluded.limits`, namespace, string(doc))
	return dbErr(op, err)
}

// DeleteNamespaceLimits removes a namespace's limits.
func (s *Store) DeleteNamespaceLimits(ctx context.Context, namespace string) error {
	return s.deleteRow(ctx, "sqlite.DeleteNamespaceLimits", `DELETE FROM namespace_limits WHERE namespace = ?`, namespace)
}

// ---- actions ----

func decodeAction(op string, rev, updated int64, doc string) (whisk.Action, error) {
	var a whisk.Action
	if err := json.Unmarshal([]byte(doc), &a); err != nil {
		return whisk.Action{}, dbErr(op, fmt.Errorf("decode action: %w", err))
	}
	a.Rev = rev
	a.Updated = updated
	return a, nil
}

// GetAction returns an action with its code and Rev.
func (s *Store) GetAction(ctx context.Context, namespace, name string) (whisk.Action, error) {
	const op = "sqlite.GetAction"
	var rev, updated int64
	var doc string
	err := s.r.QueryRowContext(ctx,
		`SELECT rev, updated, doc FROM actions WHERE namespace = ? AND name = ?`, namespace, name,
	).Scan(&rev, &updated, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return whisk.Action{}, s.missing(ctx, s.r, op, "", namespace, name)
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
	const op = "sqlite.PutAction"
	if expectRev < 0 {
		return whisk.Action{}, whisk.E(op, whisk.Invalid, fmt.Sprintf("invalid revision %d", expectRev), nil)
	}
	a.Rev = expectRev + 1
	a.Updated = s.now().UnixMilli()
	doc, err := json.Marshal(a)
	if err != nil {
		return whisk.Action{}, whisk.E(op, whisk.Internal, "", err)
	}
	var res sql.Result
	if expectRev == 0 {
		// A package, trigger or rule of the namespace may hold the name.
		res, err = s.w.ExecContext(ctx,
			`INSERT INTO actions (namespace, name, rev, updated, doc) SELECT ?, ?, ?, ?, ?
			 WHERE NOT EXISTS (SELECT 1 FROM entities WHERE namespace = ? AND name = ? AND kind IN `+sharedKinds+`)
			 ON CONFLICT (namespace, name) DO NOTHING`,
			a.Namespace, a.Name, a.Rev, a.Updated, string(doc), a.Namespace, a.Name)
	} else {
		res, err = s.w.ExecContext(ctx,
			`UPDATE actions SET rev = ?, updated = ?, doc = ? WHERE namespace = ? AND name = ? AND rev = ?`,
			a.Rev, a.Updated, string(doc), a.Namespace, a.Name, expectRev)
	}
	if err != nil {
		return whisk.Action{}, dbErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return whisk.Action{}, dbErr(op, err)
	}
	if n == 0 {
		if expectRev == 0 {
			if err := s.missing(ctx, s.w, op, "", a.Namespace, a.Name); !whisk.IsKind(err, whisk.NotFound) {
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
	const op = "sqlite.DeleteAction"
	var rev, updated int64
	var doc string
	err := s.w.QueryRowContext(ctx,
		`DELETE FROM actions WHERE namespace = ? AND name = ? RETURNING rev, updated, doc`, namespace, name,
	).Scan(&rev, &updated, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return whisk.Action{}, s.missing(ctx, s.w, op, "", namespace, name)
	}
	if err != nil {
		return whisk.Action{}, dbErr(op, err)
	}
	return decodeAction(op, rev, updated, doc)
}

// sqlLimit maps "0 or less = no limit" to SQLite's -1.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}

// ListActions returns the actions of a namespace sorted by name, without
// code (Exec.Code is empty). limit 0 means no limit.
func (s *Store) ListActions(ctx context.Context, namespace string, skip, limit int) ([]whisk.Action, error) {
	return s.listActions(ctx, "sqlite.ListActions", `WHERE namespace = ?`, []any{namespace}, skip, limit)
}

// ListPackageActions returns the actions of package pkg of a namespace
// (stored as "pkg/<name>") sorted by name, without code.
func (s *Store) ListPackageActions(ctx context.Context, namespace, pkg string, skip, limit int) ([]whisk.Action, error) {
	prefix := pkg + "/"
	return s.listActions(ctx, "sqlite.ListPackageActions", `WHERE namespace = ? AND substr(name, 1, ?) = ?`,
		[]any{namespace, len(prefix), prefix}, skip, limit)
}

// CountPackageActions counts the actions of package pkg of a namespace.
func (s *Store) CountPackageActions(ctx context.Context, namespace, pkg string) (int, error) {
	prefix := pkg + "/"
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM actions WHERE namespace = ? AND substr(name, 1, ?) = ?`,
		namespace, len(prefix), prefix).Scan(&n)
	return n, dbErr("sqlite.CountPackageActions", err)
}

// listActions lists the actions a WHERE clause selects, by name, without code.
func (s *Store) listActions(ctx context.Context, op, where string, args []any, skip, limit int) ([]whisk.Action, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT rev, updated, json_remove(doc, '$.exec.code') FROM actions `+where+`
		 ORDER BY name LIMIT ? OFFSET ?`,
		append(args, sqlLimit(limit), max(skip, 0))...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []whisk.Action{}
	for rows.Next() {
		var rev, updated int64
		var doc string
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
	return out, dbErr(op, rows.Err())
}

// CountActions counts the actions of a namespace.
func (s *Store) CountActions(ctx context.Context, namespace string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM actions WHERE namespace = ?`, namespace).Scan(&n)
	return n, dbErr("sqlite.CountActions", err)
}

// ---- activations ----

// putActivationSQL inserts a record unless one of the id exists (the
// first record wins; see store.Store.PutActivation).
const putActivationSQL = `INSERT INTO activations (activation_id, namespace, name, start, "end", doc) VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT (activation_id) DO NOTHING`

// errClosed answers writes after Close.
var errClosed = errors.New("sqlite: store closed")

// PutActivation stores a record; storing the same id again keeps the
// first record (store.Store.PutActivation). It
// returns nil once the record is committed (group commit: see the package
// comment). When ctx ends first it returns ctx's error, and the record may
// or may not have been written.
func (s *Store) PutActivation(ctx context.Context, a whisk.Activation) error {
	const op = "sqlite.PutActivation"
	doc, err := a.AppendJSON(make([]byte, 0, docSize(&a)))
	if err != nil {
		return whisk.E(op, whisk.Internal, "", err)
	}
	req := &actReq{
		ctx:  ctx,
		args: []any{string(a.ActivationID), a.Namespace, a.FilterName(), a.Start, a.End, string(doc)},
		done: make(chan error, 1),
	}
	select {
	case s.acts <- req:
	case <-s.closing:
		return whisk.E(op, whisk.Internal, "", errClosed)
	case <-ctx.Done():
		return dbErr(op, ctx.Err())
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return dbErr(op, ctx.Err())
	}
}

// docSize is about the length of a's JSON document, so that encoding it
// grows its buffer once at most.
func docSize(a *whisk.Activation) int {
	n := 384 + len(a.Response.Result)
	for _, l := range a.Logs {
		n += len(l) + 3
	}
	for _, kv := range a.Annotations {
		n += len(kv.Key) + len(kv.Value) + 20
	}
	return n
}

// activationWriter is the one goroutine that writes activation records:
// it takes a record, then every other one already waiting (up to
// maxBatch), and writes them together. With a CommitDelay, a batch of a
// stream waits for others until CommitDelay after the previous commit. It
// returns when Close is called.
func (s *Store) activationWriter() {
	defer close(s.writerDone)
	batch := make([]*actReq, 0, maxBatch)
	var linger *time.Timer
	if s.commitDelay > 0 {
		linger = time.NewTimer(time.Hour)
		linger.Stop()
	}
	var last time.Time // when the previous batch was committed
	for {
		select {
		case r := <-s.acts:
			batch = append(batch[:0], r)
		case <-s.closing:
			return
		}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-s.acts:
				batch = append(batch, r)
			default:
				break more
			}
		}
		if linger != nil && len(batch) < maxBatch && time.Since(last) < max(streamWindow, s.commitDelay) {
			if d := s.commitDelay - time.Since(last); d > 0 {
				linger.Reset(d)
			wait:
				for len(batch) < maxBatch {
					select {
					case r := <-s.acts:
						batch = append(batch, r)
					case <-linger.C:
						break wait
					case <-s.closing:
						break wait
					}
				}
				linger.Stop()
			}
		}
		s.writeActivations(batch)
		last = time.Now()
		clear(batch)
	}
}

// writeActivations writes a batch and answers every request of it.
func (s *Store) writeActivations(batch []*actReq) {
	const op = "sqlite.PutActivation"
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil { // the caller is gone: do not write
			r.done <- dbErr(op, err)
			continue
		}
		live = append(live, r)
	}
	if len(live) > 1 && s.writeBatch(live) == nil {
		s.batches.Add(1)
		s.commits.Add(1)
		s.recorded.Add(uint64(len(live)))
		for _, r := range live {
			r.done <- nil
		}
		return
	}
	// One record, or a batch that failed (rolled back): one by one, each
	// with its own answer. Records are insert-if-absent, so writing one again is safe.
	for _, r := range live {
		_, err := s.putAct.ExecContext(r.ctx, r.args...)
		if err == nil {
			s.recorded.Add(1)
			s.commits.Add(1)
		}
		r.done <- dbErr(op, err)
	}
}

// writeBatch writes every record in one transaction; on any error nothing
// is kept.
func (s *Store) writeBatch(batch []*actReq) error {
	// Not a caller's context: one caller giving up must not fail the others.
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	stmt := tx.StmtContext(ctx, s.putAct)
	for _, r := range batch {
		if _, err := stmt.ExecContext(ctx, r.args...); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

// GetActivation returns one record of a namespace.
func (s *Store) GetActivation(ctx context.Context, namespace string, id whisk.ActivationID) (whisk.Activation, error) {
	const op = "sqlite.GetActivation"
	var doc string
	err := s.r.QueryRowContext(ctx,
		`SELECT doc FROM activations WHERE activation_id = ? AND namespace = ?`, string(id), namespace,
	).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return whisk.Activation{}, notFound(op)
	}
	if err != nil {
		return whisk.Activation{}, dbErr(op, err)
	}
	var a whisk.Activation
	if err := json.Unmarshal([]byte(doc), &a); err != nil {
		return whisk.Activation{}, dbErr(op, fmt.Errorf("decode activation %s: %w", id, err))
	}
	return a, nil
}

// activationWhere builds the WHERE clause and arguments of f.
func activationWhere(namespace string, f store.ActivationFilter) (string, []any) {
	var b strings.Builder
	args := []any{namespace}
	b.WriteString(`WHERE namespace = ?`)
	if f.Name != "" {
		b.WriteString(` AND name = ?`)
		args = append(args, f.Name)
	}
	if f.Since != 0 {
		b.WriteString(` AND start >= ?`)
		args = append(args, f.Since)
	}
	if f.Upto != 0 {
		b.WriteString(` AND start <= ?`)
		args = append(args, f.Upto)
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
		return nil, retag(err, "sqlite.ListActivations")
	}
	return out, nil
}

// EachActivation calls fn with each record matching f, newest first, one
// row at a time (store.Store.EachActivation).
func (s *Store) EachActivation(ctx context.Context, namespace string, f store.ActivationFilter, fn func(whisk.Activation) error) error {
	const op = "sqlite.EachActivation"
	where, args := activationWhere(namespace, f)
	args = append(args, sqlLimit(f.Limit), max(f.Skip, 0))
	col := `doc`
	if f.Summary {
		col = `json_remove(doc, '$.logs', '$.response.result')`
	}
	rows, err := s.r.QueryContext(ctx,
		`SELECT `+col+` FROM activations `+where+` ORDER BY start DESC, activation_id LIMIT ? OFFSET ?`, args...)
	if err != nil {
		return dbErr(op, err)
	}
	defer rows.Close()
	var doc []byte
	for rows.Next() {
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
	where, args := activationWhere(namespace, f)
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM activations `+where, args...).Scan(&n)
	return n, dbErr("sqlite.CountActivations", err)
}

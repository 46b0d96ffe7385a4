package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/eddy-faas/eddy/internal/admin"
	"github.com/eddy-faas/eddy/internal/store/postgres"
	"github.com/eddy-faas/eddy/internal/store/sqlite"
)

// adminCmd runs `eddy admin …` (see internal/admin).
func adminCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "certs" { // not the store's: see tls.go
		return adminCertsCmd(args[1:], stdout, stderr)
	}
	home, _ := os.UserHomeDir()
	return admin.Run(ctx, args, admin.Config{
		Stdout: stdout, Stderr: stderr,
		DefaultDataDir: filepath.Join(home, ".eddy", "standalone"),
		Getenv:         os.Getenv,
		Open:           openAdminStore,
	})
}

// openAdminStore opens a cluster's PostgreSQL database, or the SQLite
// database of a standalone data dir, which must exist: a mistyped
// --data-dir must not quietly create an empty database. SQLite lets admin
// write while standalone runs (WAL; each connection waits up to 10 s for
// the other process's write lock).
func openAdminStore(ctx context.Context, dataDir, postgresURL string) (admin.Store, error) {
	log := slog.New(slog.DiscardHandler)
	if postgresURL != "" {
		if !isPostgresURL(postgresURL) {
			return nil, fmt.Errorf("--postgres: want a PostgreSQL URL (postgres://user:password@host:port/db)")
		}
		return postgres.Open(ctx, postgresURL, log)
	}
	path := filepath.Join(dataDir, "eddy.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no Eddy database at %s (run 'eddy standalone --data-dir %s' once, or give --postgres URL): %w", path, dataDir, err)
	}
	return sqlite.Open(ctx, path, log)
}

package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/store/postgres"
	"github.com/eddy-faas/eddy/internal/store/postgres/pgtest"
	"github.com/eddy-faas/eddy/internal/store/sqlite"
	"github.com/eddy-faas/eddy/internal/whisk"
)

func runAdmin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"admin"}, args...), strings.NewReader(""), &out, &errb)
	return code, strings.TrimSpace(out.String()), errb.String()
}

func TestAdminOnDataDir(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := runAdmin(t, "--data-dir", dir, "user", "list"); code != 1 || !strings.Contains(errs, "no Eddy database") {
		t.Fatalf("no database: exit %d, %q", code, errs)
	}
	s, err := sqlite.Open(t.Context(), filepath.Join(dir, "eddy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	code, key, errs := runAdmin(t, "user", "create", "alice", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("create: exit %d, %q", code, errs)
	}
	uuid, _, err := whisk.ParseAuthKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runAdmin(t, "--data-dir", dir, "limits", "set", "alice", "--concurrentContainers", "2"); code != 0 {
		t.Fatalf("limits set: exit %d, %q", code, errs)
	}
	s, err = sqlite.Open(t.Context(), filepath.Join(dir, "eddy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if id, err := s.IdentityByUUID(t.Context(), uuid); err != nil || id.Namespace != "alice" || id.Limits.ConcurrentContainers != 2 {
		t.Fatalf("identity = %+v, %v", id, err)
	}
}

func TestAdminOnPostgres(t *testing.T) {
	url := pgtest.Start(t)
	code, key, errs := runAdmin(t, "--postgres", url, "user", "create", "bobby", "--namespace", "team")
	if code != 0 {
		t.Fatalf("create: exit %d, %q", code, errs)
	}
	if code, _, errs := runAdmin(t, "--postgres", url, "limits", "set", "team", "--invocationsPerMinute", "9"); code != 0 {
		t.Fatalf("limits set: exit %d, %q", code, errs)
	}
	uuid, _, _ := whisk.ParseAuthKey(key)
	s, err := postgres.Open(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if id, err := s.IdentityByUUID(t.Context(), uuid); err != nil || id.Namespace != "team" || id.Limits.InvocationsPerMinute != 9 {
		t.Fatalf("identity = %+v, %v", id, err)
	}
	if code, _, errs := runAdmin(t, "--postgres", "not a url", "user", "list"); code != 1 || !strings.Contains(errs, "--postgres") {
		t.Fatalf("bad url: exit %d, %q", code, errs)
	}
}
